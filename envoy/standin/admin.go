package standin

import (
	"fmt"
	"net/http"
	"reflect"
)

// adminHandler serves the parts of Envoy's admin interface scripts use: /ready (LIVE when
// serving), /stats (the stand-in's counters, one "name: value" per line) and /server_info.
func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "LIVE")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		st := p.Stats()
		v, t := reflect.ValueOf(st), reflect.TypeOf(st)
		for i := range t.NumField() {
			fmt.Fprintf(w, "standin.%s: %d\n", t.Field(i).Name, v.Field(i).Uint())
		}
	})
	mux.HandleFunc("GET /server_info", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, p.Banner())
	})
	return mux
}
