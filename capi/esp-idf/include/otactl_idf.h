// Ready-made otactl callbacks for ESP-IDF: the modem on an ESP-IDF UART driver, the flash
// through esp_flash (the chip's own flash, absolute addresses, as the engine writes its
// slots and otadata), time from esp_timer, waits from FreeRTOS. With these an ESP-IDF app
// needs no callback code of its own:
//
//     static otactl_idf idf;
//     otactl_callbacks cb;
//     ESP_ERROR_CHECK(otactl_idf_modem_uart_install(&idf));   // Kconfig: port, pins, baud
//     otactl_idf_callbacks(&idf, &cb);                        // then set cb.event if wanted
//     otactl_config cfg;
//     otactl_config_default(&cfg);
//     ESP_ERROR_CHECK(otactl_idf_config_from_chip(&cfg));     // chip, flash size, running app
//
// Flash encryption is not supported by these callbacks (they write plain bytes).
#pragma once

#include "driver/uart.h"
#include "esp_err.h"
#include "otactl.h"

#ifdef __cplusplus
extern "C" {
#endif

// What the callbacks need to know; `ctx` of the callbacks points at it, so it must outlive
// the engine (a static is simplest).
typedef struct {
    // The modem's UART, its driver installed (by otactl_idf_modem_uart_install or the app).
    uart_port_t uart;
} otactl_idf;

// Fills every callback of `cb` (event: NULL, for the app to set) with ctx = idf.
void otactl_idf_callbacks(otactl_idf *idf, otactl_callbacks *cb);

// Installs the UART driver for the modem with the menuconfig settings ("otactl cellular
// OTA": port, TX/RX pins, RTS/CTS, rate, receive buffer) and sets idf->uart.
esp_err_t otactl_idf_modem_uart_install(otactl_idf *idf);

// Sets what the chip itself knows: `chip` (from IDF_TARGET), `flash_size`, `baud` and
// `rts_cts` (menuconfig) and `running_app_offset` (esp_ota_get_running_partition()).
esp_err_t otactl_idf_config_from_chip(otactl_config *cfg);

#ifdef __cplusplus
}
#endif
