// Package pgcount counts the statements clients send to PostgreSQL, by
// standing between them as a TCP proxy that reads the frontend protocol.
//
// Counting on the client side, at the wire, needs nothing from the server
// (no pg_stat_statements, no log settings) and sees everything a node
// sends, keep-alive pings included, which server-side statistics miss. It
// is how `picloud stats idle` measures what an idle node costs.
//
// A statement is a simple query ('Q') or an execution ('E') of the extended
// protocol. TLS is refused to clients (they fall back to plain text, as
// sslmode=prefer does) and not used upstream: the proxy is for local
// measurement.
package pgcount

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
)

// Proxy forwards connections from a loopback port to an upstream server.
type Proxy struct {
	ln       net.Listener
	network  string
	upstream string

	mu     sync.Mutex
	counts map[string]int
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Start listens on a free loopback port and forwards to upstream, given as
// a network ("tcp" or "unix") and an address.
func Start(network, upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, network: network, upstream: upstream, counts: map[string]int{}, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy and its connections.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Reset zeroes the counts.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[string]int{}
}

// Statement is a statement text and how often it was sent.
type Statement struct {
	SQL   string
	Count int
}

// Counts returns the total and the statements by text, most frequent first.
func (p *Proxy) Counts() (total int, statements []Statement) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for sql, n := range p.counts {
		total += n
		statements = append(statements, Statement{SQL: sql, Count: n})
	}
	sort.Slice(statements, func(i, j int) bool {
		if statements[i].Count != statements[j].Count {
			return statements[i].Count > statements[j].Count
		}
		return statements[i].SQL < statements[j].SQL
	})
	return total, statements
}

func (p *Proxy) count(sql string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[sql]++
}

func (p *Proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial(p.network, p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	p.track(client, true)
	p.track(server, true)
	defer p.track(client, false)
	defer p.track(server, false)

	if err := p.startup(client, server); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(client, server)
		_ = client.Close()
		close(done)
	}()
	_ = p.frontend(client, server)
	_ = server.Close()
	<-done
}

const (
	sslRequestCode = 80877103
	gssRequestCode = 80877104
)

// startup passes the startup message on, declining TLS and GSS encryption
// requests so that the rest of the conversation can be read.
func (p *Proxy) startup(client, server net.Conn) error {
	for {
		var header [8]byte
		if _, err := io.ReadFull(client, header[:]); err != nil {
			return err
		}
		length := binary.BigEndian.Uint32(header[:4])
		code := binary.BigEndian.Uint32(header[4:])
		if length == 8 && (code == sslRequestCode || code == gssRequestCode) {
			if _, err := client.Write([]byte{'N'}); err != nil {
				return err
			}
			continue
		}
		if length < 8 || length > 10000 {
			return errors.New("pgcount: bad startup message")
		}
		rest := make([]byte, length-8)
		if _, err := io.ReadFull(client, rest); err != nil {
			return err
		}
		_, err := server.Write(append(header[:], rest...))
		return err
	}
}

// frontend forwards the client's messages and counts its statements.
func (p *Proxy) frontend(client, server net.Conn) error {
	statements := map[string]string{} // prepared statement name -> SQL
	portals := map[string]string{}    // portal name -> SQL
	for {
		var header [5]byte
		if _, err := io.ReadFull(client, header[:]); err != nil {
			return err
		}
		length := binary.BigEndian.Uint32(header[1:])
		if length < 4 || length > 1<<30 {
			return errors.New("pgcount: bad message")
		}
		body := make([]byte, length-4)
		if _, err := io.ReadFull(client, body); err != nil {
			return err
		}
		switch header[0] {
		case 'Q':
			p.count(cstring(body, 0))
		case 'P': // Parse: statement name, query
			name := cstring(body, 0)
			statements[name] = cstring(body, len(name)+1)
		case 'B': // Bind: portal name, statement name
			portal := cstring(body, 0)
			portals[portal] = statements[cstring(body, len(portal)+1)]
		case 'E': // Execute: portal name
			p.count(portals[cstring(body, 0)])
		case 'C': // Close: 'S' statement or 'P' portal, name
			if len(body) > 0 {
				if body[0] == 'S' {
					delete(statements, cstring(body, 1))
				} else {
					delete(portals, cstring(body, 1))
				}
			}
		}
		if _, err := server.Write(append(header[:], body...)); err != nil {
			return err
		}
	}
}

// cstring reads the NUL-terminated string at offset, squeezing whitespace
// so that the same statement written over several lines counts as one.
func cstring(b []byte, offset int) string {
	if offset > len(b) {
		return ""
	}
	b = b[offset:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// Report formats counts over a duration as statements per minute.
func Report(w io.Writer, total int, statements []Statement, minutes float64) {
	fmt.Fprintf(w, "%.1f statements/min (%d in %.1f min)\n", float64(total)/minutes, total, minutes)
	for _, s := range statements {
		sql := s.SQL
		if len(sql) > 100 {
			sql = sql[:97] + "..."
		}
		fmt.Fprintf(w, "  %6.1f/min  %s\n", float64(s.Count)/minutes, sql)
	}
}
