// In-memory ESP-IDF for the host test of otactl_idf.c: a UART whose receive buffer the test
// fills (and bytes that arrive only while a read waits), a flash array, a clock, and a
// record of the waits and driver settings asked for.
#include "fakes.h"

#include <string.h>

struct fake_idf fake;

esp_err_t uart_driver_install(uart_port_t uart_num, int rx_buffer_size, int tx_buffer_size,
                              int queue_size, QueueHandle_t *uart_queue, int intr_alloc_flags) {
    (void)tx_buffer_size; (void)queue_size; (void)uart_queue; (void)intr_alloc_flags;
    fake.installed_port = uart_num;
    fake.rx_buffer_size = rx_buffer_size;
    return ESP_OK;
}

esp_err_t uart_param_config(uart_port_t uart_num, const uart_config_t *uart_config) {
    (void)uart_num;
    fake.config = *uart_config;
    return ESP_OK;
}

esp_err_t uart_set_pin(uart_port_t uart_num, int tx_io_num, int rx_io_num, int rts_io_num,
                       int cts_io_num) {
    (void)uart_num;
    fake.tx_pin = tx_io_num; fake.rx_pin = rx_io_num;
    fake.rts_pin = rts_io_num; fake.cts_pin = cts_io_num;
    return ESP_OK;
}

esp_err_t uart_set_baudrate(uart_port_t uart_num, uint32_t baudrate) {
    (void)uart_num;
    fake.baud = baudrate;
    return ESP_OK;
}

esp_err_t uart_get_buffered_data_len(uart_port_t uart_num, size_t *size) {
    (void)uart_num;
    *size = fake.rx_len;
    return ESP_OK;
}

// As ESP-IDF's: waits until `length` bytes are there or the ticks are over, returns what it
// got. Here the wait is where the late bytes arrive.
int uart_read_bytes(uart_port_t uart_num, void *buf, uint32_t length, TickType_t ticks_to_wait) {
    (void)uart_num;
    if (fake.rx_len < length && ticks_to_wait > 0) {
        fake.read_wait_ticks += ticks_to_wait;
        memcpy(fake.rx + fake.rx_len, fake.late, fake.late_len);
        fake.rx_len += fake.late_len;
        fake.late_len = 0;
    }
    size_t n = fake.rx_len < length ? fake.rx_len : length;
    memcpy(buf, fake.rx, n);
    memmove(fake.rx, fake.rx + n, fake.rx_len - n);
    fake.rx_len -= n;
    return (int)n;
}

int uart_write_bytes(uart_port_t uart_num, const void *src, size_t size) {
    (void)uart_num;
    memcpy(fake.tx + fake.tx_len, src, size);
    fake.tx_len += size;
    return (int)size;
}

esp_err_t esp_flash_read(esp_flash_t *chip, void *buffer, uint32_t address, uint32_t length) {
    if (chip != NULL || address + length > sizeof fake.flash) return ESP_FAIL;
    memcpy(buffer, fake.flash + address, length);
    return ESP_OK;
}

esp_err_t esp_flash_write(esp_flash_t *chip, const void *buffer, uint32_t address, uint32_t length) {
    if (chip != NULL || address + length > sizeof fake.flash) return ESP_FAIL;
    const uint8_t *src = buffer;
    for (uint32_t i = 0; i < length; i++) fake.flash[address + i] &= src[i];  // NOR: 1 -> 0
    return ESP_OK;
}

esp_err_t esp_flash_erase_region(esp_flash_t *chip, uint32_t start, uint32_t len) {
    if (chip != NULL || start % 4096 || len % 4096 || start + len > sizeof fake.flash) return ESP_FAIL;
    memset(fake.flash + start, 0xFF, len);
    return ESP_OK;
}

esp_err_t esp_flash_get_size(esp_flash_t *chip, uint32_t *out_size) {
    if (chip != NULL) return ESP_FAIL;
    *out_size = 4u * 1024 * 1024;
    return ESP_OK;
}

static const esp_partition_t running = {.address = 0x110000, .size = 0x100000, .label = "ota_0"};

const esp_partition_t *esp_ota_get_running_partition(void) { return &running; }

void esp_rom_delay_us(uint32_t us) { fake.spun_us += us; }

void vTaskDelay(const TickType_t xTicksToDelay) { fake.delay_ticks += xTicksToDelay; }

int64_t esp_timer_get_time(void) { return fake.now_us; }
