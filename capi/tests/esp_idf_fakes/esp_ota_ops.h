// ESP-IDF v5's esp_ota_ops.h / esp_partition.h, the part otactl_idf.c uses.
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
const esp_partition_t *esp_ota_get_running_partition(void);
