"""Shell text as a shell would run it: quotes, escapes and simple indirection taken away.

The command patterns (`commands.py`) read the prompt as written. An agent, or whoever steers it,
can spell the same command so that no pattern sees it while any shell still runs it:
`r""m -rf /`, `rm${IFS}-rf${IFS}/`, `x=rm; $x -rf /`, `echo cm0gLXJmIC8= | base64 -d | sh`,
`bash -c 'rm -rf /'`, `$'\\x72\\x6d' -rf /`. `unfold(text)` parses the text with tree-sitter's
bash grammar (a maintained parser that reads quoting and expansions the way bash does, rather
than our guess at it) and renders every command it finds as plain words, one command a line:

- words lose their quotes and escapes; `$IFS`/`${IFS}` become a space; `$'...'` strings are
  decoded; a variable assigned earlier in the text (`x=rm`) is replaced by its value;
- `bash -c`/`sh -c` scripts and command substitutions (`$(...)`, backticks) are unfolded too;
- a literal piped through a decoder into a shell or interpreter (`echo B64 | base64 -d | sh`,
  `xxd -r -p`) is decoded and unfolded, to a bounded depth and size;
- `python -c`, `perl -e`, `ruby -e`, `node -e` one-liners are emitted as their code, so the
  patterns for code (`shutil.rmtree`, `os.remove`, ...) can read it;
- redirections keep their target (`> /etc/passwd`).

The classifier runs the command patterns over this rendering as well as over the text itself.
Prose parses as harmless "commands" and renders as the same words, so it adds no hit the text
did not already have. Pure: no I/O, no clock; bounded in input size, depth and output size.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

import tree_sitter
import tree_sitter_bash

__all__ = ["MAX_UNFOLD_CHARS", "might_hide_commands", "unfold"]

# The parser reads at most this much text, and the rendering is cut at the same size.
MAX_UNFOLD_CHARS = 64 * 1024
_MAX_DEPTH = 4  # nested `bash -c`, substitutions and decoded payloads
_MAX_NESTING = 100  # syntax nesting (subshells, groups) walked; deeper text is kept as written

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))
# Characters without which the shell reads a text word for word as written: no quoting,
# expansion, escape, pipe or redirection. A text with none of them needs no parse.
_SHELLISH = re.compile(r"[$`\\\"'|<>]|\s-[ce]\b")
_IFS = re.compile(r"\$(?:\{IFS\}|IFS\b)")
# Characters outside the Basic Multilingual Plane (4 bytes in UTF-8: emoji, rare CJK, ...).
# tree-sitter-bash 0.25 reads past its buffer on a `{` followed by one (a SIGSEGV on Linux that
# kills the whole server: tree-sitter/tree-sitter-bash#337, open). To the shell such a
# character is only ever part of a word, so the parser is given U+FFFD in its place; the
# patterns still read the text as written.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"})
_CODE_FLAGS = {
    "python": "-c",
    "python2": "-c",
    "python3": "-c",
    "perl": "-e",
    "ruby": "-e",
    "node": "-e",
    "nodejs": "-e",
    "php": "-r",
}
_DECODERS = frozenset({"base64", "xxd", "openssl"})


def might_hide_commands(text: str) -> bool:
    """True when `text` has quoting, expansion, escapes or pipes: only then can `unfold` differ."""
    return _SHELLISH.search(text) is not None


def unfold(text: str) -> str:
    """The commands of `text` as a shell runs them, one a line ("" when it has none)."""
    out: list[str] = []
    text = text[:MAX_UNFOLD_CHARS]
    reader = _Unfolder(out)
    reader.script(text, depth=0)
    if "\n" in text:
        # Line by line as well, keeping the variables: text in front of a command must not
        # hide it by opening a quote or a construct that swallows the lines after it.
        for line in text.splitlines():
            reader.script(line, depth=0)
    rendered = "\n".join(line for line in out if line.strip())
    return rendered[:MAX_UNFOLD_CHARS]


class _Unfolder:
    def __init__(self, out: list[str]) -> None:
        self.out = out
        self.vars: dict[str, str] = {}
        self.size = 0
        # What the last statement printed, when it is a literal we can follow (`echo x`, or an
        # `echo B64 | base64 -d` pipeline): the value of a `$(...)` around it.
        self.printed: str | None = None

    def emit(self, line: str) -> None:
        if self.size < MAX_UNFOLD_CHARS:
            self.out.append(line)
            self.size += len(line) + 1

    def script(self, text: str, depth: int) -> None:
        if depth > _MAX_DEPTH or not text.strip():
            return
        # `$IFS` is a field separator wherever it stands; the grammar does not always see the
        # second one in `rm$IFS-rf$IFS/`, so it is replaced before parsing.
        source = _ASTRAL.sub("\ufffd", _IFS.sub(" ", text)).encode("utf-8", "surrogatepass")
        tree = _PARSER.parse(source)
        self.node(tree.root_node, source, depth)

    # -- statements -------------------------------------------------------------------------

    def node(self, node: tree_sitter.Node, src: bytes, depth: int, level: int = 0) -> None:
        if level > _MAX_NESTING:
            # `( ( ( ... rm -rf / ) ) )` a thousand deep: no shell spelling to take away here,
            # and the text as written is scanned anyway. Keep it as written and stop walking.
            self.emit(_text(node, src))
            return
        kind = node.type
        if kind == "variable_assignment":
            name = node.child_by_field_name("name")
            value = node.child_by_field_name("value")
            if name is not None:
                self.vars[_text(name, src)] = self.word(value, src, depth) if value is not None else ""
            return
        if kind == "command":
            self.command(node, src, depth)
            return
        if kind == "pipeline":
            self.pipeline(node, src, depth, level)
            return
        if kind == "redirected_statement":
            for child in node.children:
                if child.type in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
                    self.emit(self.redirect(child, src, depth))
                else:
                    self.node(child, src, depth, level + 1)
            return
        for child in node.named_children:
            self.node(child, src, depth, level + 1)

    def command(self, node: tree_sitter.Node, src: bytes, depth: int) -> list[str]:
        words: list[str] = []
        redirects: list[str] = []
        for child in node.named_children:
            if child.type == "variable_assignment":  # `X=1 cmd`: an environment for cmd only
                continue
            if child.type in ("file_redirect", "herestring_redirect"):
                redirects.append(self.redirect(child, src, depth))
                continue
            words.append(self.word(child, src, depth))
        line = " ".join(w for w in words if w)
        self.emit(" ".join([line, *redirects]).strip())
        argv = " ".join(words).split()
        self.printed = None
        if argv:
            if argv[0] in ("echo", "printf"):
                self.printed = " ".join(a for a in argv[1:] if not a.startswith("-"))
            self.nested(argv, depth)
        return argv

    def nested(self, argv: list[str], depth: int) -> None:
        """`bash -c SCRIPT` is unfolded; `python -c CODE` is emitted as its code."""
        program = argv[0].rsplit("/", 1)[-1]
        if program in ("env", "sudo", "nohup", "exec", "command", "nice", "time") and len(argv) > 1:
            self.nested(argv[1:], depth)
            return
        if program in _SHELLS and "-c" in argv[1:]:
            at = argv.index("-c")
            self.script(" ".join(argv[at + 1 :]), depth + 1)
        flag = _CODE_FLAGS.get(re.sub(r"[\d.]+$", "", program) if program.startswith("python") else program)
        if flag is not None and flag in argv[1:]:
            at = argv.index(flag)
            self.emit(" ".join(argv[at + 1 :]))

    def pipeline(self, node: tree_sitter.Node, src: bytes, depth: int, level: int) -> None:
        stages = node.named_children
        data: str | None = None  # what flows through the pipe, when it is a literal we can follow
        for stage in stages:
            if stage.type != "command":
                self.node(stage, src, depth, level + 1)
                data = None
                continue
            argv = self.command(stage, src, depth)
            program = argv[0].rsplit("/", 1)[-1] if argv else ""
            if program in ("echo", "printf") and len(argv) > 1:
                data = " ".join(a for a in argv[1:] if not a.startswith("-"))
            elif program in _DECODERS and data is not None:
                data = _decode(program, argv[1:], data)
            elif data is not None and (program in _SHELLS or program in _CODE_FLAGS or program == "python"):
                if program in _SHELLS:
                    self.script(data, depth + 1)
                else:
                    self.emit(data)
                data = None
            else:
                data = None
        self.printed = data

    def redirect(self, node: tree_sitter.Node, src: bytes, depth: int) -> str:
        parts = [
            self.word(c, src, depth) if c.is_named else _text(c, src)
            for c in node.children
            if c.type != "file_descriptor"
        ]
        return " ".join(p for p in parts if p)

    # -- words ------------------------------------------------------------------------------

    def word(self, node: tree_sitter.Node, src: bytes, depth: int) -> str:
        kind = node.type
        if kind in ("word", "command_name", "number"):
            if node.named_child_count:
                return "".join(self.word(c, src, depth) for c in node.named_children)
            return _unescape(_text(node, src))
        if kind == "raw_string":
            return _text(node, src)[1:-1]
        if kind == "ansi_c_string":
            return _ansi_c(_text(node, src)[2:-1])
        if kind == "string":
            return "".join(
                self.word(c, src, depth) if c.type != "string_content" else _text(c, src)
                for c in node.named_children
            )
        if kind in ("concatenation", "translated_string"):
            return "".join(self.word(c, src, depth) for c in node.named_children)
        if kind in ("simple_expansion", "expansion"):
            name = next((c for c in node.named_children if c.type == "variable_name"), None)
            if name is None:
                return _text(node, src)
            var = _text(name, src)
            if var == "IFS":
                return " "
            return self.vars.get(var, _text(node, src))
        if kind == "command_substitution":
            inner = _text(node, src)
            inner = inner[2:-1] if inner.startswith("$(") else inner.strip("`")
            mark = len(self.out)
            self.printed = None
            self.script(inner, depth + 1)
            # `$(echo rm)` is `rm`, `$(echo B64 | base64 -d)` what it decodes to; any other
            # substitution stays visible as one.
            if self.printed is not None:
                return self.printed
            return "$(" + "; ".join(self.out[mark:]) + ")"
        return _text(node, src)


def _text(node: tree_sitter.Node, src: bytes) -> str:
    return src[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _unescape(word: str) -> str:
    # Outside quotes a backslash makes the next character literal: `\r\m` is `rm`.
    return re.sub(r"\\(.)", r"\1", word, flags=re.S)


def _ansi_c(body: str) -> str:
    try:
        return codecs.decode(body.encode("latin-1", "backslashreplace"), "unicode_escape")
    except (UnicodeDecodeError, ValueError):
        return body


def _decode(program: str, args: list[str], data: str) -> str | None:
    """What `echo DATA | program args` prints, for the decoders we follow; None otherwise."""
    try:
        b64 = program == "base64" and any(a in ("-d", "--decode", "-D") for a in args)
        if b64 or (program == "openssl" and "base64" in args and "-d" in args):
            raw = base64.b64decode(data.strip() + "=" * (-len(data.strip()) % 4))
        elif program == "xxd" and "-r" in args:
            raw = binascii.unhexlify(re.sub(r"[^0-9a-fA-F]", "", data))
        else:
            return None
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", "replace")
