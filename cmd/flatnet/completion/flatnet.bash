# bash completion for flatnet(8)
# Installed as /usr/share/bash-completion/completions/flatnet; also printed
# by `flatnet completion bash`.

_flatnet() {
    local cur prev cword
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cword=$COMP_CWORD

    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "run status check teardown completion version help" -- "$cur"))
        return 0
    fi

    case $prev in
        --config|-config)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
    esac
    case $cur in
        --config=*|-config=*)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "${cur#*=}"))
            return 0
            ;;
    esac

    case ${COMP_WORDS[1]} in
        status|check)
            COMPREPLY=($(compgen -W "--config --json" -- "$cur"))
            ;;
        run|teardown)
            COMPREPLY=($(compgen -W "--config" -- "$cur"))
            ;;
        completion)
            if [[ $cword -eq 2 ]]; then
                COMPREPLY=($(compgen -W "bash zsh" -- "$cur"))
            fi
            ;;
    esac
    return 0
}
complete -F _flatnet flatnet
