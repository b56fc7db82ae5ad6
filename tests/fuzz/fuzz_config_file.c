/* libFuzzer target for config_file_value(), the rule for the content of a
 * <VARIABLE>_FILE (node/config.h, "Files").
 *
 * Invariants checked: an accepted content gives 1..CONFIG_MAX_STRING bytes
 * without a NUL, a prefix of the input, followed by nothing, "\n" or "\r\n";
 * a refused one is empty after that strip, holds a NUL, or is too long; the
 * same input with one more "\n" gives the same answer and value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t n = (size_t)-1, n2 = (size_t)-1;
    const char *why = config_file_value(s, size, &n);
    if (n > size)
        abort();
    size_t tail = size - n;
    if (tail > 2 || (tail == 1 && s[n] != '\n') || (tail == 2 && memcmp(s + n, "\r\n", 2) != 0))
        abort();
    int nul = memchr(s, '\0', n) != NULL;
    if (!why && (n == 0 || n > CONFIG_MAX_STRING || nul))
        abort();
    if (why && !(n == 0 || n > CONFIG_MAX_STRING || nul))
        abort();
    /* a value that does not end in \n or \r keeps its answer with a "\n" added */
    if (tail == 0 && size > 0 && s[size - 1] != '\n' && s[size - 1] != '\r') {
        char *more = malloc(size + 1);
        if (!more)
            return 0;
        memcpy(more, s, size);
        more[size] = '\n';
        const char *why2 = config_file_value(more, size + 1, &n2);
        free(more);
        if ((why == NULL) != (why2 == NULL) || n2 != n)
            abort();
    }
    return 0;
}
