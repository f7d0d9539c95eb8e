// The state of the in-memory ESP-IDF of fakes.c.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "driver/uart.h"
#include "esp_flash.h"
#include "esp_ota_ops.h"

struct fake_idf {
    uint8_t rx[4096];
    size_t rx_len;
    // Bytes that arrive only while a read waits.
    uint8_t late[256];
    size_t late_len;
    uint8_t tx[4096];
    size_t tx_len;
    uint8_t flash[64 * 1024];
    int64_t now_us;
    TickType_t read_wait_ticks;
    TickType_t delay_ticks;
    uint64_t spun_us;
    uint32_t baud;
    int installed_port, rx_buffer_size, tx_pin, rx_pin, rts_pin, cts_pin;
    uart_config_t config;
};

extern struct fake_idf fake;
