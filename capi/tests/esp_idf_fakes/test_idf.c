// Runs the ESP-IDF callbacks of otactl_idf.c against fakes.c and checks each keeps the
// otactl_callbacks contract of otactl.h. Prints "ok" and exits 0 when all hold.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakes.h"
#include "otactl_idf.h"

static int failures;
#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, #cond); \
            failures++;                                                     \
        }                                                                   \
    } while (0)

static void give(const char *s) {
    memcpy(fake.rx + fake.rx_len, s, strlen(s));
    fake.rx_len += strlen(s);
}

static void give_late(const char *s) {
    memcpy(fake.late, s, strlen(s));
    fake.late_len = strlen(s);
}

int main(void) {
    static otactl_idf idf;
    otactl_callbacks cb;
    memset(&cb, 0, sizeof cb);
    CHECK(otactl_idf_modem_uart_install(&idf) == ESP_OK);
    CHECK(idf.uart == 1 && fake.installed_port == 1);
    CHECK(fake.tx_pin == 5 && fake.rx_pin == 4);
    CHECK(fake.rts_pin == UART_PIN_NO_CHANGE && fake.cts_pin == UART_PIN_NO_CHANGE);
    CHECK(fake.config.baud_rate == 115200 && fake.config.data_bits == UART_DATA_8_BITS);
    CHECK(fake.config.parity == UART_PARITY_DISABLE && fake.config.stop_bits == UART_STOP_BITS_1);
    CHECK(fake.config.flow_ctrl == UART_HW_FLOWCTRL_DISABLE);
    CHECK(fake.rx_buffer_size == 2048);

    otactl_idf_callbacks(&idf, &cb);
    CHECK(cb.ctx == &idf && cb.event == NULL);
    uint8_t buf[64];

    // What the driver holds comes at once, without waiting.
    give("\r\nOK\r\n");
    CHECK(cb.uart_read(cb.ctx, buf, sizeof buf, 20000000) == 6);
    CHECK(memcmp(buf, "\r\nOK\r\n", 6) == 0 && fake.read_wait_ticks == 0);
    // No more than asked for; the rest stays for the next read.
    give("0123456789");
    CHECK(cb.uart_read(cb.ctx, buf, 4, 1000) == 4 && memcmp(buf, "0123", 4) == 0);
    CHECK(cb.uart_read(cb.ctx, buf, sizeof buf, 1000) == 6 && memcmp(buf, "456789", 6) == 0);
    CHECK(fake.read_wait_ticks == 0);
    // Nothing held: waits for the first byte (at least the timeout, rounded up to a tick),
    // then returns it with what came with it instead of waiting for a full buffer.
    give_late("+CIPRXGET: 1,0\r\n");
    CHECK(cb.uart_read(cb.ctx, buf, sizeof buf, 25000) == 16);
    CHECK(memcmp(buf, "+CIPRXGET: 1,0\r\n", 16) == 0);
    CHECK(fake.read_wait_ticks == 3);  // 25 ms at 100 Hz
    // Nothing comes: 0 after the wait; a zero timeout does not wait at all.
    fake.read_wait_ticks = 0;
    CHECK(cb.uart_read(cb.ctx, buf, sizeof buf, 1000) == 0 && fake.read_wait_ticks == 1);
    fake.read_wait_ticks = 0;
    CHECK(cb.uart_read(cb.ctx, buf, sizeof buf, 0) == 0 && fake.read_wait_ticks == 0);
    CHECK(cb.uart_read(cb.ctx, buf, 0, 1000) == 0);

    CHECK(cb.uart_write(cb.ctx, (const uint8_t *)"AT\r", 3) == 3);
    CHECK(fake.tx_len == 3 && memcmp(fake.tx, "AT\r", 3) == 0);
    CHECK(cb.uart_set_baud(cb.ctx, 921600) == 0 && fake.baud == 921600);

    // Flash: absolute addresses on the chip's own flash, erase then program, errors negative.
    memset(fake.flash, 0, sizeof fake.flash);
    CHECK(cb.flash_erase(cb.ctx, 0x1000, 0x1000) == 0);
    CHECK(fake.flash[0x0FFF] == 0 && fake.flash[0x1000] == 0xFF && fake.flash[0x1FFF] == 0xFF);
    CHECK(fake.flash[0x2000] == 0);
    CHECK(cb.flash_write(cb.ctx, 0x1004, (const uint8_t *)"\x12\x34\x56\x78", 4) == 0);
    uint8_t back[8];
    CHECK(cb.flash_read(cb.ctx, 0x1002, back, 8) == 0);
    CHECK(memcmp(back, "\xFF\xFF\x12\x34\x56\x78\xFF\xFF", 8) == 0);
    CHECK(cb.flash_read(cb.ctx, 0xFFFF0, back, 8) < 0);
    CHECK(cb.flash_erase(cb.ctx, 0x1000, 100) < 0);

    fake.now_us = 123456789;
    CHECK(cb.now_us(cb.ctx) == 123456789);
    // Under a tick spins; longer yields whole ticks, never more than asked.
    cb.sleep_us(cb.ctx, 500);
    CHECK(fake.spun_us == 500 && fake.delay_ticks == 0);
    cb.sleep_us(cb.ctx, 9999);
    CHECK(fake.spun_us == 10499 && fake.delay_ticks == 0);
    cb.sleep_us(cb.ctx, 25000);
    CHECK(fake.delay_ticks == 2);
    cb.sleep_us(cb.ctx, 60000000);
    CHECK(fake.delay_ticks == 6002);

    otactl_config cfg;
    memset(&cfg, 0, sizeof cfg);
    CHECK(otactl_idf_config_from_chip(&cfg) == ESP_OK);
    CHECK(cfg.chip == OTACTL_CHIP_CODE_ESP32C3);
    CHECK(cfg.flash_size == 4u * 1024 * 1024 && cfg.running_app_offset == 0x110000);
    CHECK(cfg.baud == 115200 && !cfg.rts_cts);

    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    puts("ok");
    return 0;
}
