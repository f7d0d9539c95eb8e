// FreeRTOS as ESP-IDF configures it, the part otactl_idf.c uses (a 100 Hz tick, ESP-IDF's
// default CONFIG_FREERTOS_HZ).
#pragma once
#include <stdint.h>
typedef uint32_t TickType_t;
typedef void *QueueHandle_t;
#define configTICK_RATE_HZ 100
#define pdMS_TO_TICKS(xTimeInMs) \
    ((TickType_t)(((TickType_t)(xTimeInMs) * (TickType_t)configTICK_RATE_HZ) / (TickType_t)1000U))
