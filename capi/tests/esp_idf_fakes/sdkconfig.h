// The menuconfig values the host test builds otactl_idf.c with (Kconfig's defaults).
#pragma once
#define CONFIG_IDF_TARGET_ESP32C3 1
#define CONFIG_OTACTL_MODEM_UART_NUM 1
#define CONFIG_OTACTL_MODEM_TX_PIN 5
#define CONFIG_OTACTL_MODEM_RX_PIN 4
#define CONFIG_OTACTL_MODEM_BAUD 115200
#define CONFIG_OTACTL_MODEM_RX_BUFFER 2048
