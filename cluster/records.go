package cluster

import (
	"slices"
	"time"
)

// newerRecord reports whether a wins over b: the later write, and at the same time the greater
// node name, so that every node picks the same.
func newerRecord(a, b Record) bool {
	if c := a.Updated.Compare(b.Updated); c != 0 {
		return c > 0
	}
	return a.Node > b.Node
}

// Put writes a record (this node as its writer, now as its time) and sends it to every member.
func (n *Node) Put(r Record) {
	n.write(r)
}

// Delete deletes the record id everywhere: a tombstone replaces it for TombstoneTTL.
func (n *Node) Delete(id string) {
	now := time.Now()
	n.write(Record{ID: id, Deleted: true, Expires: now.Add(TombstoneTTL)})
}

func (n *Node) write(r Record) {
	now := time.Now()
	n.mu.Lock()
	r.Node, r.Updated = n.cfg.Name, now
	if cur, ok := n.records[r.ID]; ok && !r.Updated.After(cur.Updated) {
		r.Updated = cur.Updated.Add(time.Nanosecond) // a write must win over what it replaces
	}
	n.records[r.ID] = r
	n.mu.Unlock()
	b := (&message{Type: msgRecords, Origin: n.cfg.Name, Recs: []Record{r}}).encode()
	go n.sendAll(b, true)
}

// Adopt takes records this node had before it joined (kept across a restart) unless the
// cluster knows newer writes of them.
func (n *Node) Adopt(list []Record) {
	n.mu.Lock()
	n.mergeRecords(list)
	n.mu.Unlock()
}

// mergeRecords keeps, of each record, the newest write. n.mu is held.
func (n *Node) mergeRecords(list []Record) {
	now := time.Now()
	for _, r := range list {
		if !r.Expires.IsZero() && now.After(r.Expires) {
			continue
		}
		if cur, ok := n.records[r.ID]; !ok || newerRecord(r, cur) {
			n.records[r.ID] = r
			n.pend.Records = true
		}
	}
}

// Records returns the records in force (not deleted, not expired), by ID.
func (n *Node) Records() []Record {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Record
	for _, r := range n.records {
		if !r.Deleted && (r.Expires.IsZero() || now.Before(r.Expires)) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return cmpString(a.ID, b.ID) })
	return out
}
