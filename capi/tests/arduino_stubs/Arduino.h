// The declarations of the Arduino core for ESP32 (arduino-esp32 3.x) that the otactl example
// sketch uses, with their signatures there, so that the host compiler can check the sketch
// against otactl.h. Not a core: nothing here is defined.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define HIGH 0x1
#define LOW 0x0
#define OUTPUT 0x03
#define SERIAL_8N1 0x800001c

void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t val);
unsigned long millis(void);
unsigned long micros(void);
void delay(uint32_t ms);
extern "C" void esp_restart(void);

template <class T, class L> auto min(const T &a, const L &b) -> decltype((b < a) ? b : a) { return (b < a) ? b : a; }

class HardwareSerial {
  public:
    void begin(unsigned long baud, uint32_t config = SERIAL_8N1, int8_t rxPin = -1, int8_t txPin = -1,
               bool invert = false, unsigned long timeout_ms = 20000UL, uint8_t rxfifo_full_thrhd = 120);
    int available(void);
    size_t readBytes(uint8_t *buffer, size_t length);
    size_t write(const uint8_t *buffer, size_t size);
    int printf(const char *format, ...) __attribute__((format(printf, 2, 3)));
};
extern HardwareSerial Serial;
extern HardwareSerial Serial1;
