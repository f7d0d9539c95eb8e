// The ESP-IDF callbacks of otactl_idf.h. Each one keeps the contract of otactl_callbacks in
// otactl.h; where an ESP-IDF call means something else, the comment says how it is bent.
#include "otactl_idf.h"

#include "esp_flash.h"
#include "esp_ota_ops.h"
#include "esp_rom_sys.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

// Ticks to wait at least `us` (rounded up: pdMS_TO_TICKS rounds down, and a wait cut short
// would end a read before its timeout), none for none.
static TickType_t ticks_for(uint64_t us) {
    return (TickType_t)((us * configTICK_RATE_HZ + 999999u) / 1000000u);
}

// uart_read_bytes waits until it has all `len` bytes or the timeout ends; the engine wants
// what has come, as soon as something has: take what the driver holds, or wait for one
// byte and then take what came with it.
static int32_t idf_uart_read(void *ctx, uint8_t *buf, size_t len, uint32_t timeout_us) {
    uart_port_t port = ((otactl_idf *)ctx)->uart;
    if (len == 0) {
        return 0;
    }
    size_t held = 0;
    if (uart_get_buffered_data_len(port, &held) != ESP_OK) {
        return -1;
    }
    if (held == 0) {
        int first = uart_read_bytes(port, buf, 1, ticks_for(timeout_us));
        if (first <= 0) {
            return first < 0 ? -1 : 0;
        }
        if (len == 1 || uart_get_buffered_data_len(port, &held) != ESP_OK || held == 0) {
            return 1;
        }
        size_t more = held < len - 1 ? held : len - 1;
        int n = uart_read_bytes(port, buf + 1, (uint32_t)more, 0);
        return n < 0 ? 1 : 1 + n;
    }
    size_t take = held < len ? held : len;
    int n = uart_read_bytes(port, buf, (uint32_t)take, 0);
    return n < 0 ? -1 : n;
}

static int32_t idf_uart_write(void *ctx, const uint8_t *buf, size_t len) {
    int n = uart_write_bytes(((otactl_idf *)ctx)->uart, buf, len);
    return n < 0 ? -1 : n;
}

static int32_t idf_uart_set_baud(void *ctx, uint32_t baud) {
    return uart_set_baudrate(((otactl_idf *)ctx)->uart, baud) == ESP_OK ? 0 : -1;
}

// NULL is esp_flash's default chip: the one the app runs from, where the slots are.
static int32_t idf_flash_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len) {
    (void)ctx;
    return esp_flash_read(NULL, buf, offset, (uint32_t)len) == ESP_OK ? 0 : -1;
}

static int32_t idf_flash_write(void *ctx, uint32_t offset, const uint8_t *buf, size_t len) {
    (void)ctx;
    return esp_flash_write(NULL, buf, offset, (uint32_t)len) == ESP_OK ? 0 : -1;
}

static int32_t idf_flash_erase(void *ctx, uint32_t offset, uint32_t len) {
    (void)ctx;
    return esp_flash_erase_region(NULL, offset, len) == ESP_OK ? 0 : -1;
}

static uint64_t idf_now_us(void *ctx) {
    (void)ctx;
    return (uint64_t)esp_timer_get_time();
}

// A wait shorter than a FreeRTOS tick (10 ms at ESP-IDF's default 100 Hz) spins; a longer
// one yields to other tasks for whole ticks and so may end early by less than a tick,
// which the contract allows (it never oversleeps by a tick).
static void idf_sleep_us(void *ctx, uint64_t us) {
    (void)ctx;
    const uint64_t tick_us = 1000000u / configTICK_RATE_HZ;
    if (us < tick_us) {
        esp_rom_delay_us((uint32_t)us);
    } else {
        vTaskDelay((TickType_t)(us / tick_us));
    }
}

void otactl_idf_callbacks(otactl_idf *idf, otactl_callbacks *cb) {
    cb->ctx = idf;
    cb->uart_read = idf_uart_read;
    cb->uart_write = idf_uart_write;
    cb->uart_set_baud = idf_uart_set_baud;
    cb->flash_read = idf_flash_read;
    cb->flash_write = idf_flash_write;
    cb->flash_erase = idf_flash_erase;
    cb->now_us = idf_now_us;
    cb->sleep_us = idf_sleep_us;
    cb->event = NULL;
}

esp_err_t otactl_idf_modem_uart_install(otactl_idf *idf) {
    const uart_port_t port = (uart_port_t)CONFIG_OTACTL_MODEM_UART_NUM;
    uart_config_t uart = {
        .baud_rate = CONFIG_OTACTL_MODEM_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
#if CONFIG_OTACTL_MODEM_RTS_CTS
        .flow_ctrl = UART_HW_FLOWCTRL_CTS_RTS,
        .rx_flow_ctrl_thresh = 100,
#else
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
#endif
        .source_clk = UART_SCLK_DEFAULT,
    };
    esp_err_t err = uart_driver_install(port, CONFIG_OTACTL_MODEM_RX_BUFFER, 0, 0, NULL, 0);
    if (err != ESP_OK) {
        return err;
    }
    err = uart_param_config(port, &uart);
    if (err != ESP_OK) {
        return err;
    }
#if CONFIG_OTACTL_MODEM_RTS_CTS
    err = uart_set_pin(port, CONFIG_OTACTL_MODEM_TX_PIN, CONFIG_OTACTL_MODEM_RX_PIN,
                       CONFIG_OTACTL_MODEM_RTS_PIN, CONFIG_OTACTL_MODEM_CTS_PIN);
#else
    err = uart_set_pin(port, CONFIG_OTACTL_MODEM_TX_PIN, CONFIG_OTACTL_MODEM_RX_PIN,
                       UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE);
#endif
    if (err != ESP_OK) {
        return err;
    }
    idf->uart = port;
    return ESP_OK;
}

esp_err_t otactl_idf_config_from_chip(otactl_config *cfg) {
#if CONFIG_IDF_TARGET_ESP32C3
    cfg->chip = OTACTL_CHIP_CODE_ESP32C3;
#elif CONFIG_IDF_TARGET_ESP32C6
    cfg->chip = OTACTL_CHIP_CODE_ESP32C6;
#else
#error "otactl: this IDF_TARGET has no prebuilt engine; use esp32c3 or esp32c6"
#endif
    uint32_t size = 0;
    esp_err_t err = esp_flash_get_size(NULL, &size);
    if (err != ESP_OK) {
        return err;
    }
    cfg->flash_size = size;
    const esp_partition_t *running = esp_ota_get_running_partition();
    if (running == NULL) {
        return ESP_ERR_NOT_FOUND;
    }
    cfg->running_app_offset = running->address;
    cfg->baud = CONFIG_OTACTL_MODEM_BAUD;
#if CONFIG_OTACTL_MODEM_RTS_CTS
    cfg->rts_cts = true;
#else
    cfg->rts_cts = false;
#endif
    return ESP_OK;
}
