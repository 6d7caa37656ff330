// Package outage holds a benchmark of the health engine through a regional outage (issue 13):
// tens of thousands of HTTP targets, some share of them hanging (accepting and never answering,
// as a black-holed region does) or refusing, with the backends in processes of their own on the
// other core. Nothing but its test lives here:
//
//	STEER_OUTAGE=1 go test -run '^TestOutage$' -v -timeout 60m ./test/bench/outage
//
// See outage_test.go for the knobs and RESULTS.md for the figures.
package outage
