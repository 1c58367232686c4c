// Package example is a test to copy: it starts PiCloud with picloudtest,
// deploys testdata/greet.lua and checks what an invocation returns and
// logs. See greet_test.go.
package example
