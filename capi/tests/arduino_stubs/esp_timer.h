// ESP-IDF's esp_timer.h, the call the otactl example sketch makes; a declaration only.
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
int64_t esp_timer_get_time(void);
#ifdef __cplusplus
}
#endif
