package daemon

import (
	"cmp"
	"errors"
	"maps"
	"net/netip"
	"sync"

	"github.com/flatnet/flatnet/internal/hostlocal"
	"github.com/flatnet/flatnet/internal/netlinkx"
)

// marks is what events said must be read again, from the moment a pass
// took the last ones: entries of state directories, whole directories,
// the CNI configuration directory, the kernel. Events carry no state of
// their own, so a burst of them costs a pass or two, not one each. The
// watchers' goroutines mark; the loop takes.
type marks struct {
	wake chan struct{} // a channel of one: the loop's kick

	mu     sync.Mutex
	names  map[string]map[string]bool // dir -> entries
	dirs   map[string]bool            // whole dirs
	cni    bool
	cache  map[string]map[string]bool // cache dir -> entries of its results/
	caches bool                       // every cache dir, whole
	kernel bool
	// recount: the state root's directories no network explains are to
	// be counted again (an unmatched one's grace ended).
	recount bool
	lost    bool   // notifications were lost: say so once the pass runs
	by      string // who changed flatnet's nftables table, when someone did
	why     string // the first reason for a full pass since the last take, for the debug log
	// cniDir, results (results/ dir -> its cache dir) and links say which
	// events matter; the pass sets them.
	cniDir  string
	results map[string]string
	links   map[string]bool
	unknown map[string]bool // the state root's directories no network explains
	// expectDel counts the deletions of our routes a pass made, whose
	// notifications are only our own echo.
	expectDel map[netip.Prefix]int
}

// marked is what one pass takes.
type marked struct {
	names   map[string]map[string]bool
	dirs    map[string]bool
	cni     bool
	cache   map[string]map[string]bool
	caches  bool
	kernel  bool
	recount bool
	lost    bool
	by      string // who changed flatnet's nftables table
	why     string // what first asked for a full pass
}

// full reports whether the pass must look at everything: anything but
// entries of state directories and of libcni's caches was marked.
func (m marked) full() bool { return m.cni || m.caches || m.kernel || len(m.dirs) > 0 }

func newMarks() *marks {
	return &marks{wake: make(chan struct{}, 1), names: map[string]map[string]bool{}, dirs: map[string]bool{},
		cache: map[string]map[string]bool{}, cni: true, caches: true, kernel: true, why: "start", expectDel: map[netip.Prefix]int{}}
}

// because records the first reason for a full pass since the last take;
// m.mu is held.
func (m *marks) because(why string) {
	if m.why == "" {
		m.why = why
	}
}

func (m *marks) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// file is the state and CNI directories' watcher's callback: (dir, name)
// for one entry, (dir, "") for a whole directory.
func (m *marks) file(dir, name string) {
	m.mu.Lock()
	cacheDir, inCache := m.results[dir]
	switch {
	case dir == m.cniDir:
		m.cni = true
		m.because("CNI configuration directory")
	case inCache && name == "":
		m.caches = true
		m.because("cache directory " + dir)
	case inCache:
		if m.cache[cacheDir] == nil {
			m.cache[cacheDir] = map[string]bool{}
		}
		m.cache[cacheDir][name] = true
	case name == "" && m.unknown[dir]:
		// A directory no network explains: counted again, not read.
		if m.names[dir] == nil {
			m.names[dir] = map[string]bool{}
		}
	case name == "":
		m.dirs[dir] = true
		m.because("state directory " + dir)
	default:
		if _, err := hostlocal.ParseName(name); errors.Is(err, hostlocal.ErrNotAllocation) {
			// host-local rewrites last_reserved_ip.N on every allocation:
			// the allocation's own event is the one that matters.
			m.mu.Unlock()
			return
		}
		if m.names[dir] == nil {
			m.names[dir] = map[string]bool{}
		}
		m.names[dir][name] = true
	}
	m.mu.Unlock()
	m.kick()
}

// kernelEvent is the netlink and nftables watchers' callback.
func (m *marks) kernelEvent(ev netlinkx.Event) {
	m.mu.Lock()
	switch ev.Kind {
	case netlinkx.LinkChanged:
		if !m.links[ev.Link] && len(m.links) > 0 {
			m.mu.Unlock()
			return // a pod's macvlan passing through on its way to its netns
		}
	case netlinkx.OwnRouteDeleted:
		if n := m.expectDel[ev.Dst]; n > 0 {
			if n == 1 {
				delete(m.expectDel, ev.Dst)
			} else {
				m.expectDel[ev.Dst] = n - 1
			}
			m.mu.Unlock()
			return // our own deletion coming back
		}
	case netlinkx.Lost:
		m.lost = true
	case netlinkx.FilterChanged:
		m.by = cmp.Or(ev.By, "another process")
	}
	m.kernel = true
	m.because(ev.String())
	m.mu.Unlock()
	m.kick()
}

// recountUnknown asks for the state root's unexplained directories to be
// counted again: an update pass's work.
func (m *marks) recountUnknown() {
	m.mu.Lock()
	m.recount = true
	m.mu.Unlock()
}

// all asks for everything to be read again (resync, reload, retry: why).
func (m *marks) all(dirs []string, why string) {
	m.mu.Lock()
	for _, d := range dirs {
		m.dirs[d] = true
	}
	m.cni, m.caches, m.kernel = true, true, true
	m.because(why)
	m.mu.Unlock()
}

// take returns and clears what was marked. When the kernel is to be read
// again, the echoes still expected are forgotten: the new snapshot shows
// those deletions already, and an echo that never comes (the route went
// without a notification, with its device) must not swallow a later
// deletion by someone else.
func (m *marks) take() marked {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := marked{names: m.names, dirs: m.dirs, cni: m.cni, cache: m.cache, caches: m.caches, kernel: m.kernel, recount: m.recount, lost: m.lost, by: m.by, why: m.why}
	m.names, m.dirs, m.cache = map[string]map[string]bool{}, map[string]bool{}, map[string]map[string]bool{}
	m.cni, m.caches, m.kernel, m.recount, m.lost, m.by, m.why = false, false, false, false, false, "", ""
	if t.kernel {
		clear(m.expectDel)
	}
	return t
}

// takeFiles moves every file mark made since take into t: for a full pass
// about to read the files, after it set its watches.
func (m *marks) takeFiles(t *marked) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.names == nil {
		t.names, t.dirs, t.cache = map[string]map[string]bool{}, map[string]bool{}, map[string]map[string]bool{}
	}
	for d, ns := range m.names {
		if t.names[d] == nil {
			t.names[d] = map[string]bool{}
		}
		maps.Copy(t.names[d], ns)
	}
	for d, ns := range m.cache {
		if t.cache[d] == nil {
			t.cache[d] = map[string]bool{}
		}
		maps.Copy(t.cache[d], ns)
	}
	maps.Copy(t.dirs, m.dirs)
	t.cni, t.caches = t.cni || m.cni, t.caches || m.caches
	m.names, m.dirs, m.cache = map[string]map[string]bool{}, map[string]bool{}, map[string]map[string]bool{}
	m.cni, m.caches = false, false
	m.settleWhy()
}

// settleWhy forgets the reason for a full pass once nothing left asks for
// one; m.mu is held.
func (m *marks) settleWhy() {
	if !m.kernel && !m.cni && !m.caches && len(m.dirs) == 0 {
		m.why = ""
	}
}

// takeDirs moves the whole directories marked since take into t: new
// watches announce their directories, which the pass that set them reads.
func (m *marks) takeDirs(t *marked) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range m.dirs {
		t.dirs[d] = true
	}
	clear(m.dirs)
	m.settleWhy()
}

// interest sets the CNI directory, the caches' results/ directories (and
// the cache directory of each), the links whose events matter, and the
// state root's directories that no network explains.
func (m *marks) interest(cniDir string, results map[string]string, links, unknown map[string]bool) {
	m.mu.Lock()
	m.cniDir, m.results, m.links, m.unknown = cniDir, results, links, unknown
	m.mu.Unlock()
}

// expect notes deletions about to be made, whose notifications are echoes.
func (m *marks) expect(dels []netip.Prefix) {
	m.mu.Lock()
	for _, p := range dels {
		m.expectDel[p]++
	}
	m.mu.Unlock()
}

// kernelDirty asks the next pass to read the kernel again.
func (m *marks) kernelDirty(why string) {
	m.mu.Lock()
	m.kernel = true
	m.because(why)
	m.mu.Unlock()
}
