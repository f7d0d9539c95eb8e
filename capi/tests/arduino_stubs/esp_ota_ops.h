// ESP-IDF's esp_ota_ops.h / esp_partition.h, the part the otactl example sketch and the
// ESP-IDF callbacks use; declarations only (the host test of the callbacks shares it).
#pragma once
#include <stdbool.h>
#include <stdint.h>
typedef struct {
    void *flash_chip;
    int type;
    int subtype;
    uint32_t address;
    uint32_t size;
    uint32_t erase_size;
    char label[17];
    bool encrypted;
    bool readonly;
} esp_partition_t;
#ifdef __cplusplus
extern "C" {
#endif
const esp_partition_t *esp_ota_get_running_partition(void);
#ifdef __cplusplus
}
#endif
