# shellcheck shell=sh
# Whether the scripts run under continuous integration, by the rule the Go
# tests use (internal/dev/testenv.CI): the environment variable CI read as
# a boolean. Unset, empty, and the usual spellings of false ("0", "f",
# "false", "n", "no", "off", in any case, blanks around) mean no; anything
# else ("true", "1", "yes", or a CI system's name) means yes, so an
# unexpected value fails rather than skips. Source it, then: if ci_truthy.
# internal/dev/scripts' TestCIAgrees holds the two readings together.
ci_truthy() {
	ci_v=$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]' | tr -d ' \t\n\r')
	case $ci_v in
	'' | 0 | f | false | n | no | off) return 1 ;;
	*) return 0 ;;
	esac
}
