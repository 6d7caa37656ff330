//go:build race

package healthcheck

// raceEnabled: the race detector is on. It makes sync.Pool drop what is put in it at random,
// so that allocation counts mean nothing.
const raceEnabled = true
