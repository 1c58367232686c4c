package executor

import "container/list"

type chunkKey struct {
	name    string
	version int
}

type chunkEntry struct {
	key    chunkKey
	source string
	id     int // index of the compiled chunk in the state's registry table
}

// chunkCache is the Go-side LRU bookkeeping of the compiled chunks a state
// keeps in its registry (go-lua cannot share compiled code between states,
// so every state has its own). It hands out registry ids and reports which
// ids to clear when entries are evicted.
type chunkCache struct {
	capacity int
	entries  map[chunkKey]*list.Element
	order    *list.List // front = most recently used
	nextID   int
}

func newChunkCache(capacity int) *chunkCache {
	return &chunkCache{capacity: capacity, entries: make(map[chunkKey]*list.Element), order: list.New()}
}

// get returns the registry id of key's chunk. The source is compared too
// (cheap: usually the same string) so a caller that forgets to bump Version
// gets its new code rather than stale code.
func (c *chunkCache) get(key chunkKey, source string) (int, bool) {
	el, ok := c.entries[key]
	if !ok {
		return 0, false
	}
	e := el.Value.(*chunkEntry)
	if e.source != source {
		return 0, false
	}
	c.order.MoveToFront(el)
	return e.id, true
}

// add records a newly compiled chunk and returns its id plus the ids whose
// chunks must be dropped: the least recently used beyond capacity, and
// older versions of the same function, which normally never run again.
func (c *chunkCache) add(key chunkKey, source string) (id int, evicted []int) {
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*chunkEntry); e.key.name == key.name {
			evicted = append(evicted, e.id)
			c.order.Remove(el)
			delete(c.entries, e.key)
		}
		el = next
	}
	c.nextID++
	e := &chunkEntry{key: key, source: source, id: c.nextID}
	c.entries[key] = c.order.PushFront(e)
	for c.order.Len() > c.capacity {
		el := c.order.Back()
		old := el.Value.(*chunkEntry)
		evicted = append(evicted, old.id)
		c.order.Remove(el)
		delete(c.entries, old.key)
	}
	return c.nextID, evicted
}

func (c *chunkCache) len() int { return c.order.Len() }
