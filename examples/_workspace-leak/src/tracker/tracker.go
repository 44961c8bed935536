// Package tracker keeps the peers of each torrent.
package tracker

import (
	"strconv"
	"sync"
)

// Swarm is every torrent's peers.
type Swarm struct {
	mu    sync.Mutex
	seq   int
	peers map[string][]byte
}

// NewSwarm is an empty swarm.
func NewSwarm() *Swarm { return &Swarm{peers: map[string][]byte{}} }

// Announce records a peer of a torrent and says how many peers it keeps.
// The bug: the key has a sequence number in it, so no announce ever
// replaces an earlier one, and nothing ever removes one: 1 KiB per
// announce, for good.
func (s *Swarm) Announce(infoHash, addr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.peers[infoHash+"/"+addr+"/"+strconv.Itoa(s.seq)] = make([]byte, 1024)
	return strconv.Itoa(len(s.peers))
}
