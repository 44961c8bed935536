// redis-cache-healthy is redis-cache-leak fixed: the local cache is keyed
// by product, so it holds one entry per product, refreshed after a
// minute.
package main

import (
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type entry struct {
	body    []byte
	fetched time.Time
}

var (
	mu       sync.Mutex
	cache    = map[string]*entry{}
	requests atomic.Int64
)

// cacheProduct keeps a product's body for later requests.
func cacheProduct(key, body string) *entry {
	e := &entry{body: append(make([]byte, 0, 2048), body...), fetched: time.Now()}
	mu.Lock()
	cache[key] = e
	mu.Unlock()
	return e
}

func lookup(key string) *entry {
	mu.Lock()
	defer mu.Unlock()
	return cache[key]
}

func handleProduct(rc *redisConn) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		requests.Add(1)
		key := "product:" + id
		e := lookup(key)
		if e == nil || time.Since(e.fetched) > time.Minute {
			v, err := rc.do("GET", "product:"+id)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			s, _ := v.(string)
			e = cacheProduct(key, s)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(e.body)
	}
}

func main() {
	rc, err := dialRedis(os.Getenv("REDIS_ADDR"))
	if err != nil {
		log.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := rc.do("SET", fmt.Sprintf("product:%d", i), fmt.Sprintf(`{"id":%d,"name":"product %d","cents":%d}`, i, i, 100*i)); err != nil {
			log.Fatal(err)
		}
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/product", handleProduct(rc))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
