"""`edgekit completion bash`: a shell completion script made from the CLI's own parser, so
it completes exactly the commands, actions and options this edgekit has.

    eval "$(edgekit completion bash)"         # bash, in ~/.bashrc
    autoload -U bashcompinit && bashcompinit  # zsh: first, then the same line

Commands and actions complete by name, options by name after `-`; any other word completes
as a file name (bundles, configs, ports under /dev).
"""
import argparse


def _tree(parser, path="_", out=None):
    """{"_" or "_/keys" or "_/keys/list": "words"}: the actions and options at each command
    ("_" is the root: bash arrays take no empty key)."""
    out = {} if out is None else out
    words = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append(name)
                _tree(sub, f"{path}/{name}", out)
        else:
            words += [o for o in action.option_strings if o.startswith("--") or o == "-h"]
    out[path] = " ".join(sorted(set(words)))
    return out


def bash_script(parser):
    entries = "\n".join(f'    ["{k}"]="{v}"' for k, v in sorted(_tree(parser).items()))
    return f"""# edgekit completion (bash; zsh after bashcompinit). Made by `edgekit completion bash`.
declare -gA _EDGEKIT_TREE=(
{entries}
)
_edgekit() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" key="_" w i
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [[ "$w" != -* && -n "${{_EDGEKIT_TREE[$key/$w]+x}}" ]]; then
            key="$key/$w"
        fi
    done
    local words="${{_EDGEKIT_TREE[$key]}}"
    if [[ "$cur" != -* ]]; then
        words="$(tr ' ' '\\n' <<<"$words" | grep -v '^-' | tr '\\n' ' ')"
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    if [[ ${{#COMPREPLY[@]}} -eq 0 && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _edgekit edgekit
"""


def cmd_completion(args):
    from edgekit.cli import build_parser
    script = bash_script(build_parser())
    if args.json:
        import json
        print(json.dumps({"shell": args.shell, "script": script}))
    else:
        print(script, end="")
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "completion", help="print a shell completion script",
        description='Tab completion of commands, actions and options. bash: add eval '
                    '"$(edgekit completion bash)" to ~/.bashrc; zsh: autoload -U '
                    'bashcompinit && bashcompinit, then the same line.')
    p.add_argument("shell", choices=("bash", "zsh"), help="bash or zsh (zsh uses the bash "
                   "script through bashcompinit)")
    p.add_argument("--json", action="store_true", help="the script inside a JSON object")
    p.set_defaults(func=cmd_completion)
