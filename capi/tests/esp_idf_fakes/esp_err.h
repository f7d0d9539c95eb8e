// ESP-IDF's esp_err.h, what otactl_idf.c uses. This directory declares the ESP-IDF v5 calls
// of otactl_idf.c with their ESP-IDF signatures and fakes.c implements them in memory (esp_ota_ops.h is
// shared with the Arduino stubs), so
// that the helpers' logic runs on the host (capi/tests/esp_idf_helpers.rs).
#pragma once
typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL -1
#define ESP_ERR_NOT_FOUND 0x105
