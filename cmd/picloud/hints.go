package main

import (
	"errors"
	"fmt"

	"net"
	"net/http"
	"strings"

	"github.com/alecthomas/kong"
)

// usageError prints a parse error as one line and a pointer to --help,
// then exits with exitUsage. The whole usage (about 40 lines for fn deploy)
// used to come first and pushed the one line that mattered off the screen.
func usageError(parser *kong.Kong, err error) {
	parser.Errorf("%s", err)
	fmt.Fprintf(parser.Stderr, "Run '%s --help' for usage.\n", helpCommand(parser.Model.Name, err))
	parser.Exit(exitUsage)
}

// helpCommand is the command line whose --help covers err: the commands
// parsed before the error, without their arguments.
func helpCommand(name string, err error) string {
	words := []string{name}
	if parseErr := (*kong.ParseError)(nil); errors.As(err, &parseErr) && parseErr.Context != nil {
		for _, trace := range parseErr.Context.Path {
			if trace.Command != nil {
				words = append(words, trace.Command.Name)
			}
		}
	}
	return strings.Join(words, " ")
}

// hintingDoer adds to an error reaching the server the two likely causes,
// with the URL that was tried: "connection refused" alone does not say
// that the server is not running or that PICLOUD_URL points elsewhere.
type hintingDoer struct {
	client  *http.Client
	baseURL string
}

func (d hintingDoer) Do(req *http.Request) (*http.Response, error) {
	res, err := d.client.Do(req)
	if err != nil && unreachable(err) {
		return nil, fmt.Errorf("%w (is the server running? --url/PICLOUD_URL is %s)", err, d.baseURL)
	}
	return res, err
}

// unreachable tells whether err happened before any server answered: a
// refused or failed connection, or a name that does not resolve.
func unreachable(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}
