// An ESP32-C3 board with a SIMCom SIM7600 on Serial1 (modem TX -> GPIO4, modem RX <- GPIO5,
// PWRKEY on GPIO6): checks for a signed release at every start and once an hour, installs
// it, and confirms (or rolls back) the new app after the reboot. The flash callbacks use
// ESP-IDF's esp_flash API, which the Arduino core for ESP32 includes; the Arduino `Update`
// library is not used (the engine writes the OTA slot and otadata itself).
#include <Arduino.h>
#include <esp_flash.h>
#include <esp_ota_ops.h>
#include <esp_timer.h>
#include <otactl.h>

static const int MODEM_RX_PIN = 4;
static const int MODEM_TX_PIN = 5;
static const int MODEM_PWRKEY_PIN = 6;
static const uint32_t CHECK_EVERY_MS = 60UL * 60UL * 1000UL;

// Your release key: the 32 bytes of the Ed25519 public key `otactl keygen` wrote (otactl.pub).
static const uint8_t RELEASE_KEY[32] = {0};

// The engine's whole state: no heap (otactl_state_size() says the exact need).
static uint8_t otactl_mem[OTACTL_STATE_BYTES];
static otactl_engine *ota = nullptr;

// A bug in the engine resets the chip: an update that cannot run rolls back.
extern "C" void otactl_panic(void) { esp_restart(); }

static int32_t uart_read(void *, uint8_t *buf, size_t len, uint32_t timeout_us) {
    const uint32_t start = micros();
    while (Serial1.available() == 0) {
        if (micros() - start >= timeout_us) return 0;
        delay(1);
    }
    return (int32_t)Serial1.readBytes(buf, min(len, (size_t)Serial1.available()));
}

static int32_t uart_write(void *, const uint8_t *buf, size_t len) {
    size_t n = Serial1.write(buf, len);
    return n > 0 ? (int32_t)n : -1;
}

static int32_t flash_read(void *, uint32_t offset, uint8_t *buf, size_t len) {
    return esp_flash_read(NULL, buf, offset, len) == ESP_OK ? 0 : -1;
}

static int32_t flash_write(void *, uint32_t offset, const uint8_t *buf, size_t len) {
    return esp_flash_write(NULL, buf, offset, len) == ESP_OK ? 0 : -1;
}

static int32_t flash_erase(void *, uint32_t offset, uint32_t len) {
    return esp_flash_erase_region(NULL, offset, len) == ESP_OK ? 0 : -1;
}

static uint64_t now_us(void *) { return (uint64_t)esp_timer_get_time(); }

static void sleep_us(void *, uint64_t us) { delay((uint32_t)(us / 1000) + 1); }

static void on_event(void *, const otactl_event *e) {
    Serial.printf("otactl event %d: %llu %llu %s\n", (int)e->kind, (unsigned long long)e->values[0],
                  (unsigned long long)e->values[1], e->text ? e->text : "");
}

static void modem_power_on() {
    pinMode(MODEM_PWRKEY_PIN, OUTPUT);
    digitalWrite(MODEM_PWRKEY_PIN, HIGH);
    delay(500);  // SIM7600 PWRKEY: low for at least 500 ms (here through an inverting transistor)
    digitalWrite(MODEM_PWRKEY_PIN, LOW);
}

static void update_now() {
    otactl_update_result done;
    int32_t rc = otactl_update(ota, &done);
    if (rc == OTACTL_STATUS_OK) {
        Serial.printf("otactl: %s activated in ota_%u, restarting\n", done.version, (unsigned)done.slot);
        delay(100);
        esp_restart();
    } else if (rc != OTACTL_STATUS_NOT_NEWER) {
        Serial.printf("otactl: %s: %s\n", otactl_error_name(rc), otactl_last_error(ota));
    }
}

void setup() {
    Serial.begin(115200);
    Serial1.begin(115200, SERIAL_8N1, MODEM_RX_PIN, MODEM_TX_PIN);
    modem_power_on();

    otactl_config cfg;
    otactl_config_default(&cfg);
    cfg.manifest_url = "http://ota.example.com/fleet/stable/manifest.json";
    cfg.product = "field-logger";
    cfg.channel = "stable";
    cfg.board = "esp32c3-devkitm-1";
    cfg.device_id = "field-logger-0001";
    cfg.chip = OTACTL_CHIP_CODE_ESP32C3;
    cfg.dialect = OTACTL_DIALECT_CODE_SIM7600;
    cfg.apn = "internet";
    cfg.running_app_offset = esp_ota_get_running_partition()->address;
    cfg.public_keys = RELEASE_KEY;
    cfg.public_key_count = 1;

    otactl_callbacks cb = {};
    cb.uart_read = uart_read;
    cb.uart_write = uart_write;
    cb.flash_read = flash_read;
    cb.flash_write = flash_write;
    cb.flash_erase = flash_erase;
    cb.now_us = now_us;
    cb.sleep_us = sleep_us;
    cb.event = on_event;

    int32_t rc = otactl_init(otactl_mem, sizeof otactl_mem, &cfg, &cb, &ota);
    if (rc != OTACTL_STATUS_OK) {
        Serial.printf("otactl: %s (%s)\n", otactl_error_message(rc), (const char *)otactl_mem);
        ota = nullptr;
        return;
    }
    otactl_boot_outcome outcome;
    if (otactl_after_boot(ota, &outcome) == OTACTL_STATUS_OK && outcome == OTACTL_BOOT_OUTCOME_ROLLBACK_REQUESTED) {
        esp_restart();  // the bootloader starts the previous app
    }
    update_now();
}

void loop() {
    static uint32_t last = 0;
    if (ota != nullptr && millis() - last >= CHECK_EVERY_MS) {
        last = millis();
        update_now();
    }
    delay(1000);
}
