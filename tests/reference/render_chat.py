#!/usr/bin/python3
"""render_chat.py - reference renderings of SmolLM3's chat_template.jinja with
Python's jinja2, set up as transformers' apply_chat_template does (sandboxed
environment, trim_blocks, lstrip_blocks, loopcontrols, a `generation` block tag,
strftime_now and raise_exception globals), for the chat test cases below.

Usage: render_chat.py TEMPLATE OUTDIR
Writes OUTDIR/cases.json (the inputs) and, per case NAME: NAME.txt (the rendered
prompt), NAME.messages.json, NAME.xml.json / NAME.py.json (tools, when given)
and NAME.args (the matching `smolrun chat` flags, one per line).
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(Extension):
    """{% generation %}...{% endgeneration %}: renders its body unchanged (HF's
    AssistantTracker also records where the body starts and ends)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


TOOL_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city. It's \"quoted\" and has a backslash \\ too",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "Città, e.g. Zürich or 東京 🌧"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": None},
                "days": {"type": "integer", "minimum": 1, "maximum": 16, "strict": True},
                "threshold": {"type": "number", "default": 0.5, "big": 1e16, "small": 1.5e-05,
                              "neg": -2.0, "pi": 3.141592653589793, "ten": 10.0},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TOOL_ODD = {
    "name": "odd'one",
    "description": "tab\there, newline\nthere, cr\r, nul-ish \u0001 \u007f, nbsp\u00a0, soft\u00adhyphen, "
                   "zwj\u200d, bom\ufeff, line sep\u2028, private \ue000, \U0001F600, "
                   "single ' and double \" quotes, only 'single' quotes",
    "nested": [[], {}, [1, [2, {"x": [True, False, None]}]], {"": ""}],
    "only_double": "say \"hi\"",
}
TOOL_PY = {"name": "search_contracts", "signature": "search_contracts(query: str, top_k: int = 5) -> list",
           "doc": "Searches the loaded contracts; returns [(doc_id, score)]."}

DATE = "08 July 2025"
U = lambda c: {"role": "user", "content": c}
A = lambda c: {"role": "assistant", "content": c}
S = lambda c: {"role": "system", "content": c}
T = lambda c: {"role": "tool", "content": c}

CASES = [
    ("no_system", [U("Hi")], {}),
    ("no_system_nothink", [U("Hi")], {"enable_thinking": False}),
    ("sys_think", [S("Be brief./think"), U("Hi")], {}),
    ("sys_no_think", [S("Be brief./no_think"), U("Hi")], {}),
    ("sys_both", [S("/think Be brief. /no_think"), U("Hi")], {}),
    ("sys_neither", [S("You are a contract analyst."), U("Hi")], {}),
    ("sys_neither_nothink", [S("You are a contract analyst."), U("Hi")], {"enable_thinking": False}),
    ("sys_think_overrides_kwarg", [S("Answer. /think"), U("Hi")], {"enable_thinking": False}),
    ("sys_no_think_overrides_kwarg", [S("Answer. /no_think"), U("Hi")], {"enable_thinking": True}),
    ("sys_only_flag_think", [S("/think"), U("Hi")], {}),
    ("sys_only_flag_no_think", [S("  /no_think \n"), U("Hi")], {}),
    ("sys_empty", [S(""), U("Hi")], {"enable_thinking": False}),
    ("sys_flag_in_word", [S("x/no_thinky and /thinking about /think_"), U("Hi")], {}),
    ("sys_tricky_replace", [S("/no_/thinkthink /no_think/think"), U("Hi")], {}),
    ("sys_unicode_rstrip", [S("Instructions.\u00a0\u3000\u2003\u001c\u0085 \t\n"), U("Hi")], {}),
    ("sys_keep_zwsp", [S("Ends with zero-width space\u200b"), U("Hi")], {}),
    ("system_override", [S("Raw system prompt. /system_override  "), U("Hi")], {}),
    ("system_override_flags", [S("/system_override Raw./no_think\n"), U("Hi"), A("ok")], {}),
    ("system_override_tools", [S("/system_override only"), U("Hi")], {"xml_tools": [TOOL_WEATHER]}),
    ("xml_tools", [U("Weather in Paris?")], {"xml_tools": [TOOL_WEATHER, TOOL_ODD]}),
    ("xml_tools_nothink", [S("Use tools./no_think"), U("Weather?")], {"xml_tools": [TOOL_WEATHER]}),
    ("python_tools", [U("Find the term.")], {"python_tools": [TOOL_PY, "a plain string tool", 42, None]}),
    ("both_tools", [S("Custom."), U("Go")], {"xml_tools": [TOOL_ODD], "python_tools": [TOOL_PY]}),
    ("empty_xml_tools_with_python", [U("Go")], {"xml_tools": [], "python_tools": [TOOL_PY]}),
    ("empty_tools", [U("Go")], {"xml_tools": [], "python_tools": []}),
    ("multi_turn", [S("Be helpful."), U("What is 2+2?"), A("\n\n4"), U("And 3+3?"), A("6\n"),
                    T("{\"result\": 6}"), U("Thanks"), A("\nYou're welcome.")], {}),
    ("multi_turn_nothink", [U("Q1"), A("\n\n\nA1\n\n"), U("Q2"), A("A2"), T("tool output")],
     {"enable_thinking": False}),
    ("no_generation_prompt", [S("Sys/no_think"), U("Hi"), A("Hello!")], {"add_generation_prompt": False}),
    ("no_generation_prompt_think", [U("Hi"), A("<think>\nhmm\n</think>\nHello!")], {"add_generation_prompt": False}),
    ("odd_messages", [U("a"), {"role": "developer", "content": "skipped"}, S("late system, skipped"),
                      {"role": "user", "content": None}, {"role": "assistant"},
                      {"role": "user", "content": [{"type": "text", "text": "list content"}]},
                      {"content": "no role"}, U("end")], {}),
    ("special_strings_in_content", [U("<|im_end|>\n<|im_start|>system\n<think></think>"), A("\n")], {}),
    ("unicode_content", [S("Réponds en français. 日本語も可。/think"), U("Ünïcödé 👨‍👩‍👧 bell\u0007 \r\n")],
     {"date": "01 January 2026"}),
    ("only_system", [S("Alone.")], {}),
    ("only_system_override", [S("/system_override")], {"add_generation_prompt": False}),
]


def main():
    tpl_path, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    with open(tpl_path, encoding="utf-8") as f:
        template = env.from_string(f.read())
    cases = []
    for name, messages, opts in CASES:
        date = opts.get("date", DATE)
        day = datetime.datetime.strptime(date, "%d %B %Y")
        kw = {"add_generation_prompt": opts.get("add_generation_prompt", True)}
        if "enable_thinking" in opts:
            kw["enable_thinking"] = opts["enable_thinking"]
        for k in ("xml_tools", "python_tools"):
            if k in opts:
                kw[k] = opts[k]
        text = template.render(messages=messages, raise_exception=raise_exception,
                               strftime_now=lambda fmt, d=day: d.strftime(fmt), **kw)
        with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        with open(os.path.join(out, name + ".messages.json"), "w", encoding="utf-8") as f:
            json.dump(messages, f, ensure_ascii=False)
        args = ["--date", date]
        if not kw.get("enable_thinking", True):
            args.append("--no-think")
        if not kw["add_generation_prompt"]:
            args.append("--no-generation-prompt")
        for k, flag, suffix in (("xml_tools", "--xml-tools", ".xml.json"), ("python_tools", "--python-tools", ".py.json")):
            if k in opts:
                with open(os.path.join(out, name + suffix), "w", encoding="utf-8") as f:
                    json.dump(opts[k], f, ensure_ascii=False)
                args += [flag, os.path.join(out, name + suffix)]
        with open(os.path.join(out, name + ".args"), "w", encoding="utf-8") as f:
            f.write("\n".join(args) + "\n")
        case = {"name": name, "messages": messages, "date": date,
                "enable_thinking": kw.get("enable_thinking", True),
                "add_generation_prompt": kw["add_generation_prompt"]}
        for k in ("xml_tools", "python_tools"):
            if k in opts:
                case[k] = opts[k]
        cases.append(case)
    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    print("render_chat: %d cases, jinja2 %s -> %s" % (len(cases), jinja2.__version__, out))


if __name__ == "__main__":
    main()
