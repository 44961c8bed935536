package web

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/memgate/memgate/gate"
)

// sourceLink is a culprit's line on GitHub, in the run's commit.
type sourceLink struct {
	URL      string
	Where    string // file:line
	Vendored bool
	// Function is the culprit, when the row does not name it already.
	Function string
}

// source links a site's culprit to its line on GitHub, or is nil when the
// frame is not a line of the repository (gate.Frame.Source). shown is the
// function the row already names. Each part of the address is escaped: a
// path from the service's profile cannot add a query, a fragment or a step
// up to another page.
func (p *Pages) source(run gate.Run, f *gate.Frame, shown string) *sourceLink {
	src, ok := f.Source()
	if !ok || run.HeadSHA == "" {
		return nil
	}
	owner, name, ok := strings.Cut(run.Repository, "/")
	if !ok {
		return nil
	}
	segs := strings.Split(src.File, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	l := &sourceLink{Where: src.String(), Vendored: src.Vendored,
		URL: p.cfg.GitHubURL + "/" + url.PathEscape(owner) + "/" + url.PathEscape(name) + "/blob/" + url.PathEscape(run.HeadSHA) + "/" +
			strings.Join(segs, "/") + "#L" + strconv.Itoa(src.Line)}
	if f.Function != shown {
		l.Function = f.Function
	}
	return l
}

// anySource reports whether a heap site has a line to link.
func anySource(sites []gate.HeapSite) bool {
	for _, h := range sites {
		if _, ok := h.Culprit.Source(); ok {
			return true
		}
	}
	return false
}
