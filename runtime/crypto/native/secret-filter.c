/* mayHoldSecret: the simulator's leak scanner (simulations/secrets-scan.ts) asks this first,
 * and reads a text itself only when it says yes. The rules are the scanner's: every maximal run
 * of at least 16 base64/base64url characters is decoded as base64 (a last group of 2 or 3
 * characters gives 1 or 2 bytes, a lone last character nothing), and a run of at least 24 hex
 * digits also as hex; a decoded run may hold a secret when it contains "cnry-" (when canaries
 * are registered) or when the 4 bytes at some offset, with 12 bytes from there on, are the head
 * of a registered key prefix. "No" is exact; "yes" may be wrong (the scanner then finds nothing). */
#include <pthread.h>
#include <string.h>
#include "native.h"

#define MIN_RUN 16
#define KEY_PREFIX_BYTES 12
#define MAX_TEXT 8192 /* UTF-16 units; a text this long or longer gets "yes": the scanner reads it */
#define HEADS16_BYTES (65536 / 8)

typedef struct {
  const uint8_t *heads16;     /* a bit per first 2 bytes of a registered prefix */
  const uint8_t *heads32;     /* open-addressing table of the first 4 bytes (u32, native order) */
  const uint8_t *used;        /* 1 where heads32 holds a head */
  uint32_t slots;             /* a power of two */
  int shift;                  /* 32 - log2(slots): a head's slot is the top bits of its product */
  int canaries;
} keys_t;

/* Each ASCII character's value as a base64 digit (both alphabets) and as a hex digit; -1: none. */
static int8_t base64_digits[128], hex_digits[128];

static void fill_tables(void) {
  const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  memset(base64_digits, -1, sizeof base64_digits);
  memset(hex_digits, -1, sizeof hex_digits);
  for (int i = 0; i < 64; i++) base64_digits[(unsigned char)b64[i]] = (int8_t)i;
  base64_digits['-'] = 62;
  base64_digits['_'] = 63;
  for (int i = 0; i < 16; i++) hex_digits[(unsigned char)"0123456789abcdef"[i]] = hex_digits[(unsigned char)"0123456789ABCDEF"[i]] = (int8_t)i;
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static inline int base64_digit(uint16_t c) { return c < 128 ? base64_digits[c] : -1; }

/* Same multiplier, slot and probe order as the table's writer (SecretScanner.addHead). */
static int has_head(const keys_t *k, uint32_t head) {
  uint32_t mask = k->slots - 1;
  uint32_t i = (uint32_t)((uint64_t)(uint32_t)(head * 2654435761u) >> k->shift);
  for (uint32_t probes = 0; probes < k->slots && k->used[i]; probes++, i = (i + 1) & mask) {
    uint32_t stored;
    memcpy(&stored, k->heads32 + 4 * (size_t)i, 4);
    if (stored == head) return 1;
  }
  return 0; /* an empty slot, or (a table never this full) every slot probed */
}

static int decoded_may_hold(const keys_t *k, const uint8_t *b, size_t n) {
  if (k->canaries) {
    for (const uint8_t *c = b; (c = memchr(c, 'c', (size_t)(b + n - c))) != NULL && c + 5 <= b + n; c++) {
      if (memcmp(c, "cnry-", 5) == 0) return 1;
    }
  }
  for (size_t i = 0; i + KEY_PREFIX_BYTES <= n; i++) {
    uint32_t h16 = ((uint32_t)b[i] << 8) | b[i + 1];
    if (!(k->heads16[h16 >> 3] & (1u << (h16 & 7)))) continue;
    uint32_t head = ((uint32_t)b[i] << 24) | ((uint32_t)b[i + 1] << 16) | ((uint32_t)b[i + 2] << 8) | b[i + 3];
    if (has_head(k, head)) return 1;
  }
  return 0;
}

static int run_may_hold(const keys_t *k, const uint16_t *run, size_t len, uint8_t *out) {
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0, hex = len >= 2 * KEY_PREFIX_BYTES;
  for (size_t i = 0; i < len; i++) {
    acc = ((acc << 6) | (uint32_t)base64_digits[run[i]]) & 0xffffff; /* run characters are ASCII */
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(acc >> bits);
    }
    if (hex && hex_digits[run[i]] < 0) hex = 0;
  }
  if (decoded_may_hold(k, out, n)) return 1;
  if (!hex) return 0;
  n = 0;
  for (size_t i = 0; i + 1 < len; i += 2) out[n++] = (uint8_t)((hex_digits[run[i]] << 4) | hex_digits[run[i + 1]]);
  return decoded_may_hold(k, out, n);
}

/* mayHoldSecret(text, heads16, heads32, used, canaries) -> boolean: heads16 is 8 KiB, heads32 the
 * table's bytes (4 per slot, a power of two of slots), used a byte per slot. */
napi_value talos_may_hold_secret(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc = 5;
  bytes_t a[3] = {{0}};
  bool canaries = false;
  uint16_t text[MAX_TEXT + 1];
  uint8_t decoded[MAX_TEXT];
  size_t len = 0;
  int ok = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 5 &&
           napi_get_value_string_utf16(env, argv[0], (char16_t *)text, MAX_TEXT + 1, &len) == napi_ok &&
           napi_get_value_bool(env, argv[4], &canaries) == napi_ok;
  for (int i = 0; ok && i < 3; i++) ok = read_uint8_array(env, argv[1 + i], &a[i]);
  const size_t slots = a[2].len;
  if (!ok || a[0].len != HEADS16_BYTES || slots == 0 || slots > UINT32_MAX || (slots & (slots - 1)) != 0 || a[1].len != 4 * slots) {
    napi_throw_type_error(env, "native_bad_call", "talos_native: mayHoldSecret(text, heads16, heads32, used, canaries)");
    return NULL;
  }
  keys_t k = {a[0].p, a[1].p, a[2].p, (uint32_t)slots, 32 - __builtin_ctz((uint32_t)slots), canaries};
  pthread_once(&tables_once, fill_tables);
  int maybe = len >= MAX_TEXT; /* possibly cut short: the scanner reads it itself */
  for (size_t i = 0, start = 0; !maybe && i <= len; i++) {
    uint16_t c = i < len ? text[i] : 0;
    if (c < 128 && base64_digit(c) >= 0) continue;
    if (i - start >= MIN_RUN) maybe = run_may_hold(&k, text + start, i - start, decoded);
    start = i + 1;
  }
  napi_value result;
  napi_get_boolean(env, maybe, &result);
  return result;
}
