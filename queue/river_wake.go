package queue

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// River's producers wake on a NOTIFY that River hears on a LISTEN
// connection of its own. After a database restart that connection comes
// back on River's backoff, 0.5 s doubling up to 32 s and counted over the
// process's life, not per outage, and nothing fetches when it does: work
// enqueued meanwhile waited for the next wake-up or the 10-minute fetch
// poll. Measured before this file: work enqueued right after a restart ran
// 1.0-3.9 s later, 7 s in TestDatabaseRestart.
//
// So River's listener is bent here, and only here: the driver hands River
// a listener without a connection (wakeListener), and the node's own
// LISTEN connection, which reconnects within half a second (listen.go),
// passes River's channel on to it, and after every reconnect tells it that
// work may be waiting, so the producers fetch once. Each worker keeps one
// LISTEN connection instead of two, and River's ping every 5 s on its own
// is gone.
//
// It fails safe: if River stops subscribing through the listener it is
// given (a River upgrade), it hears nothing from here and still fetches on
// its 10-minute poll, and TestWakeAfterListenerDrop fails; if the channel
// changes, picloud.wake_channel() names it (sql/functions/10_transport.sql)
// and River's version is pinned by TestRiverVersionIsTheOneChecked.

// riverDriver is River's pgx driver with the listener replaced.
type riverDriver struct {
	*riverpgxv5.Driver
	listener *wakeListener
}

func newRiverDriver(c *Client) riverDriver {
	return riverDriver{Driver: riverpgxv5.New(c.pool), listener: newWakeListener()}
}

// GetListener returns the one listener River's notifier uses.
func (d riverDriver) GetListener(*riverdriver.GetListenenerParams) riverdriver.Listener {
	return d.listener
}

// wakeListener implements riverdriver.Listener over a Go channel. River's
// notifier calls Connect, Listen and Ping on its own schedule; none needs
// a connection, so none can fail, and River never enters its backoff.
type wakeListener struct {
	notifications chan *riverdriver.Notification
	// wakePayload is what River's producers expect on the insert topic
	// for PiCloud's queue.
	wakePayload string

	mu sync.Mutex
	// topic is River's name for the wake channel: the channel without
	// River's schema prefix, as River's notifier subscribes to it.
	topic string
	// topics are those River subscribed to.
	topics map[string]bool
}

func newWakeListener() *wakeListener {
	payload, _ := json.Marshal(map[string]string{"queue": riverQueue})
	return &wakeListener{
		// A wake-up says "fetch"; a few pending are as good as many, so
		// deliver drops past the buffer rather than block the node's
		// listener.
		notifications: make(chan *riverdriver.Notification, 8),
		wakePayload:   string(payload),
		topics:        map[string]bool{},
	}
}

func (l *wakeListener) Close(context.Context) error   { return nil }
func (l *wakeListener) Connect(context.Context) error { return nil }
func (l *wakeListener) Ping(context.Context) error    { return nil }
func (l *wakeListener) Schema() string                { return Schema }
func (l *wakeListener) SetAfterConnectExec(string)    {}

func (l *wakeListener) Listen(_ context.Context, topic string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.topics[topic] = true
	return nil
}

func (l *wakeListener) Unlisten(_ context.Context, topic string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.topics, topic)
	return nil
}

// WaitForNotification returns the next wake-up, or the context's error
// when River interrupts the wait (to subscribe, to ping, or to stop).
func (l *wakeListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	select {
	case n := <-l.notifications:
		return n, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// setChannel names the wake channel (picloud.wake_channel()).
func (l *wakeListener) setChannel(channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.topic = strings.TrimPrefix(channel, Schema+".")
}

// deliver passes a notification on the wake channel to River, if River
// listens for it, without waiting.
func (l *wakeListener) deliver(payload string) {
	l.mu.Lock()
	topic, listening := l.topic, l.topics[l.topic]
	l.mu.Unlock()
	if !listening {
		return
	}
	select {
	case l.notifications <- &riverdriver.Notification{Topic: topic, Payload: payload}:
	default:
	}
}

// riverWakeHandler hears River's channel on the node's LISTEN connection.
type riverWakeHandler struct{ listener *wakeListener }

func (h riverWakeHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.listener.deliver(n.Payload)
	return nil
}

// HandleBacklog runs at every (re)connect: a wake-up sent while the
// connection was down is lost, so the producers fetch once to catch up.
func (h riverWakeHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.listener.deliver(h.listener.wakePayload)
	return nil
}
