package lab

import "time"

// CPUTime is the user plus system CPU time the process used (with its
// waited-for children), known once it has exited; zero before.
func (p *Process) CPUTime() time.Duration {
	if !p.Exited() || p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}
