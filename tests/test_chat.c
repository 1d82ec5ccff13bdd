/* test_chat.c - chat template unit tests (SPEC §4 worked examples, Python repr
 * of tool values, errors) and, with --ref DIR (tests/t_chat_ref.sh), byte
 * comparison with Jinja2's rendering of chat_template.jinja for every case in
 * DIR/cases.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "test.h"

static void check_repr(const char *json, const char *want) {
    json_error_t je;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
    char *got = v ? chat_python_repr(v) : NULL;
    CHECK_MSG(got && strcmp(got, want) == 0, "repr(%s) = %s, want %s", json, got ? got : "(null)", want);
    free(got);
    json_decref(v);
}

static void test_units(void) {
    chat_options o = chat_options_default();
    o.date = "08 July 2025";
    sd_err err = {0};
    /* SPEC §4 worked example (a): system "Be brief./no_think", user "Hi". */
    chat_message m[] = {{"system", "Be brief./no_think"}, {"user", "Hi"}};
    char *s = chat_render(m, 2, &o, &err);
    const char *want_a =
        "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 08 July 2025\n"
        "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nBe brief.\n\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n";
    CHECK(s && strcmp(s, want_a) == 0);
    free(s);
    /* (b): /think, ends with the bare generation prompt. */
    m[0].content = "Be brief./think";
    s = chat_render(m, 2, &o, &err);
    CHECK(s && strstr(s, "Reasoning Mode: /think\n") && strstr(s, "Be brief.\n\n<|im_start|>user\nHi<|im_end|>\n"));
    const char *tail = "<|im_end|>\n<|im_start|>assistant\n";
    CHECK(s && strlen(s) > strlen(tail) && strcmp(s + strlen(s) - strlen(tail), tail) == 0);
    free(s);
    /* no system message: default think instructions; today's date when none given */
    o.date = NULL;
    s = chat_render(m + 1, 1, &o, &err);
    CHECK(s && strstr(s, "Today Date: ") && strstr(s, "Your role as an assistant") && !strstr(s, "<|im_end|>\n<|im_start|>user"));
    free(s);
    /* errors */
    CHECK(chat_render(m, 0, &o, &err) == NULL && err.code == SD_EINVAL);
    chat_message bad[] = {{"system", NULL}, {"user", "x"}};
    err.code = 0;
    CHECK(chat_render(bad, 2, &o, &err) == NULL && err.code == SD_EINVAL);
    json_t *obj = json_object();
    o.xml_tools = obj;
    err.code = 0;
    CHECK(chat_render(m, 2, &o, &err) == NULL && err.code == SD_EINVAL);
    json_decref(obj);
    json_t *empty = json_array();
    err.code = 0;
    CHECK(chat_render_json(empty, NULL, &err) == NULL && err.code == SD_EINVAL);
    json_decref(empty);

    /* Python repr, as Jinja's |string prints a dict loaded by json.load */
    check_repr("{\"a\": 1, \"b\": [true, false, null], \"c\": {}}", "{'a': 1, 'b': [True, False, None], 'c': {}}");
    check_repr("\"it's\"", "\"it's\"");
    check_repr("\"it's \\\"both\\\"\"", "'it\\'s \"both\"'");
    check_repr("\"tab\\tnl\\ncr\\r\\\\ \\u0001\\u007f\"", "'tab\\tnl\\ncr\\r\\\\ \\x01\\x7f'");
    check_repr("\"\\u00a0\\u00ad\\u200d\\u2028\\ue000\\ud83d\\ude00 \\u00e9\\u6771\"",
               "'\\xa0\\xad\\u200d\\u2028\\ue000\U0001F600 \u00e9\u6771'");
    check_repr("[1.0, 0.5, 1e16, 1.5e-5, 0.0001, 123.456, -2.0, 1e300, 3.141592653589793]",
               "[1.0, 0.5, 1e+16, 1.5e-05, 0.0001, 123.456, -2.0, 1e+300, 3.141592653589793]");
    check_repr("[9007199254740993, -5, 0]", "[9007199254740993, -5, 0]");
}

static char *slurp(const char *path) {
    char *p = NULL;
    size_t len;
    sd_err err;
    if (sd_read_file(path, (size_t)1 << 26, &p, &len, &err)) return NULL;
    return p;
}

static void test_reference(const char *dir) {
    char path[4096];
    json_error_t je;
    snprintf(path, sizeof path, "%s/cases.json", dir);
    json_t *cases = json_load_file(path, 0, &je);
    CHECK_MSG(json_is_array(cases), "cannot load %s: %s", path, je.text);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        chat_options o = chat_options_default();
        o.date = json_string_value(json_object_get(c, "date"));
        o.enable_thinking = json_is_true(json_object_get(c, "enable_thinking"));
        o.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt"));
        o.xml_tools = json_object_get(c, "xml_tools");
        o.python_tools = json_object_get(c, "python_tools");
        sd_err err = {0};
        char *got = chat_render_json(json_object_get(c, "messages"), &o, &err);
        snprintf(path, sizeof path, "%s/%s.txt", dir, name ? name : "?");
        char *want = slurp(path);
        int same = got && want && strcmp(got, want) == 0;
        CHECK_MSG(same, "case %s differs from Jinja2%s%s", name, got ? "" : ": ", got ? "" : err.msg);
        if (!same && got && want) {
            size_t k = 0;
            while (got[k] && got[k] == want[k]) k++;
            fprintf(stderr, "  first difference at byte %zu: ours \"%.40s\" jinja \"%.40s\"\n", k, got + k, want + k);
        }
        free(got);
        free(want);
    }
    printf("reference: %zu chat cases\n", json_array_size(cases));
    json_decref(cases);
}

int main(int argc, char **argv) {
    test_units();
    if (argc == 3 && !strcmp(argv[1], "--ref")) test_reference(argv[2]);
    return test_done();
}
