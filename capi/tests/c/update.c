/* A C firmware's use of the otactl C ABI, on the host: the modem UART is a Unix socket the
 * test bridges to the bench's modem emulator, the flash is a file loaded into RAM with NOR
 * rules (erase to 0xFF, program only clears bits) and written back at the end.
 *
 * usage: update <uart-socket> <flash-file> <manifest-url> <update|check|after-boot>
 *               <running-app-offset> <public-key-hex>
 *        update layout   (prints the sizes and offsets of the header's structs)
 * Prints one "event ..." line per event and a last "result ..." line; exits 0 when the
 * call returned OTACTL_STATUS_OK, 2 when it returned an error, 1 when the harness failed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "otactl.h"

#define FLASH_SECTOR 4096u

struct board {
    int uart;
    uint8_t *flash;
    size_t flash_len;
};

static int32_t uart_read(void *ctx, uint8_t *buf, size_t len, uint32_t timeout_us) {
    struct board *b = ctx;
    struct pollfd p = {.fd = b->uart, .events = POLLIN};
    int ready = poll(&p, 1, (int)((timeout_us + 999) / 1000));
    if (ready < 0) return errno == EINTR ? 0 : -1;
    if (ready == 0) return 0;
    ssize_t n = read(b->uart, buf, len);
    if (n < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (n == 0) return -2; /* the modem's end closed: a UART fault, not a timeout */
    return (int32_t)n;
}

static int32_t uart_write(void *ctx, const uint8_t *buf, size_t len) {
    struct board *b = ctx;
    ssize_t n = write(b->uart, buf, len);
    return n < 0 ? -1 : (int32_t)n;
}

static int32_t flash_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len) {
    struct board *b = ctx;
    if ((size_t)offset + len > b->flash_len) return -1;
    memcpy(buf, b->flash + offset, len);
    return 0;
}

static int32_t flash_write(void *ctx, uint32_t offset, const uint8_t *buf, size_t len) {
    struct board *b = ctx;
    /* The contract: 4-byte aligned offset and length. */
    if (offset % 4 || len % 4 || (size_t)offset + len > b->flash_len) return -1;
    for (size_t i = 0; i < len; i++) b->flash[offset + i] &= buf[i];
    return 0;
}

static int32_t flash_erase(void *ctx, uint32_t offset, uint32_t len) {
    struct board *b = ctx;
    if (offset % FLASH_SECTOR || len % FLASH_SECTOR || (size_t)offset + len > b->flash_len) return -1;
    memset(b->flash + offset, 0xFF, len);
    return 0;
}

static uint64_t now_us(void *ctx) {
    (void)ctx;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void sleep_us(void *ctx, uint64_t us) {
    (void)ctx;
    struct timespec t = {.tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000};
    nanosleep(&t, NULL);
}

static void on_event(void *ctx, const otactl_event *e) {
    (void)ctx;
    printf("event kind=%" PRIu32 " values=%" PRIu64 ",%" PRIu64 ",%" PRIu64 " text=%s\n", (uint32_t)e->kind,
           e->values[0], e->values[1], e->values[2], e->text ? e->text : "");
    fflush(stdout);
}

static int load_flash(struct board *b, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    b->flash = malloc((size_t)len);
    b->flash_len = (size_t)len;
    size_t got = b->flash ? fread(b->flash, 1, (size_t)len, f) : 0;
    fclose(f);
    return got == (size_t)len ? 0 : -1;
}

static int save_flash(const struct board *b, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = fwrite(b->flash, 1, b->flash_len, f);
    return fclose(f) == 0 && put == b->flash_len ? 0 : -1;
}

static int connect_uart(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(path) >= sizeof addr.sun_path) return -1;
    strcpy(addr.sun_path, path);
    return connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 ? fd : -1;
}

static int parse_key(const char *hex, uint8_t key[32]) {
    if (strlen(hex) != 64) return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        key[i] = (uint8_t)v;
    }
    return 0;
}

/* The engine's memory: the figure the header promises is enough on every target. */
static uint8_t engine_memory[OTACTL_STATE_BYTES];

/* The header's layout, for the test to compare with the Rust definitions. */
static void print_layout(void) {
    printf("otactl_config %zu %zu %zu %zu\n", sizeof(otactl_config), offsetof(otactl_config, rts_cts),
           offsetof(otactl_config, public_keys), offsetof(otactl_config, backoff_max_ms));
    printf("otactl_callbacks %zu %zu\n", sizeof(otactl_callbacks), offsetof(otactl_callbacks, event));
    printf("otactl_event %zu %zu %zu\n", sizeof(otactl_event), offsetof(otactl_event, values),
           offsetof(otactl_event, text));
    printf("otactl_check_result %zu %zu\n", sizeof(otactl_check_result), offsetof(otactl_check_result, version));
    printf("otactl_update_result %zu\n", sizeof(otactl_update_result));
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "layout") == 0) {
        print_layout();
        return 0;
    }
    if (argc != 7) {
        fprintf(stderr, "usage: %s <uart-socket> <flash-file> <manifest-url> <update|check|after-boot> "
                        "<running-app-offset> <public-key-hex>\n", argv[0]);
        return 1;
    }
    const char *mode = argv[4];
    struct board board = {.uart = connect_uart(argv[1])};
    uint8_t key[32];
    if (board.uart < 0 || load_flash(&board, argv[2]) != 0 || parse_key(argv[6], key) != 0) {
        fprintf(stderr, "harness: cannot open the UART socket, the flash file or parse the key\n");
        return 1;
    }
    if (otactl_state_size() > sizeof engine_memory) {
        fprintf(stderr, "harness: otactl_state_size() %zu exceeds OTACTL_STATE_BYTES\n", otactl_state_size());
        return 1;
    }

    otactl_config config;
    otactl_config_default(&config);
    config.manifest_url = argv[3];
    config.product = "field-logger";
    config.channel = "stable";
    config.board = "m5stack-core";
    config.device_id = "c-bench-device";
    config.chip = OTACTL_CHIP_CODE_ESP32;
    config.dialect = OTACTL_DIALECT_CODE_SIM7600;
    config.apn = "internet";
    config.flash_size = (uint32_t)board.flash_len;
    config.running_app_offset = (uint32_t)strtoul(argv[5], NULL, 0);
    config.public_keys = key;
    config.public_key_count = 1;

    otactl_callbacks callbacks = {
        .ctx = &board,
        .uart_read = uart_read,
        .uart_write = uart_write,
        .flash_read = flash_read,
        .flash_write = flash_write,
        .flash_erase = flash_erase,
        .now_us = now_us,
        .sleep_us = sleep_us,
        .event = on_event,
    };

    otactl_engine *engine = NULL;
    int32_t rc = otactl_init(engine_memory, sizeof engine_memory, &config, &callbacks, &engine);
    const char *detail = rc == OTACTL_STATUS_OK ? "" : (const char *)engine_memory;
    if (rc == OTACTL_STATUS_OK) {
        if (strcmp(mode, "update") == 0) {
            otactl_update_result done;
            rc = otactl_update(engine, &done);
            if (rc == OTACTL_STATUS_OK) printf("activated slot=%" PRIu32 " version=%s\n", done.slot, done.version);
        } else if (strcmp(mode, "check") == 0) {
            otactl_check_result found;
            rc = otactl_check(engine, &found);
            if (rc == OTACTL_STATUS_OK)
                printf("checked available=%d verdict=%s version=%s size=%" PRIu32 "\n", found.update_available,
                       otactl_error_name(found.verdict), found.version, found.size);
        } else if (strcmp(mode, "after-boot") == 0) {
            otactl_boot_outcome outcome;
            rc = otactl_after_boot(engine, &outcome);
            if (rc == OTACTL_STATUS_OK) printf("booted outcome=%" PRIu32 "\n", (uint32_t)outcome);
        } else {
            fprintf(stderr, "harness: unknown mode %s\n", mode);
            return 1;
        }
        detail = otactl_last_error(engine);
    }
    printf("result code=%" PRId32 " name=%s message=%s detail=%s\n", rc, otactl_error_name(rc),
           otactl_error_message(rc), detail);
    fflush(stdout);
    if (save_flash(&board, argv[2]) != 0) {
        fprintf(stderr, "harness: cannot write the flash file back\n");
        return 1;
    }
    free(board.flash);
    close(board.uart);
    return rc == OTACTL_STATUS_OK ? 0 : 2;
}
