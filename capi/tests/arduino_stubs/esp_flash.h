// ESP-IDF's esp_flash API (components/spi_flash/include/esp_flash.h), the calls the otactl
// example sketch makes; declarations only.
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef int esp_err_t;
#define ESP_OK 0
typedef struct esp_flash_t esp_flash_t;
#ifdef __cplusplus
extern "C" {
#endif
esp_err_t esp_flash_read(esp_flash_t *chip, void *buffer, uint32_t address, uint32_t length);
esp_err_t esp_flash_write(esp_flash_t *chip, const void *buffer, uint32_t address, uint32_t length);
esp_err_t esp_flash_erase_region(esp_flash_t *chip, uint32_t start, uint32_t len);
#ifdef __cplusplus
}
#endif
