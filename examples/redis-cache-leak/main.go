// redis-cache-leak serves products from Redis through a local cache; the
// cache key carries the request's id, so no entry is ever hit again and
// the cache grows with every request. memgate should fail it and name
// cacheProduct. Its fixed twin is redis-cache-healthy.
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

// cacheProduct keeps a product's body for later requests: the bug, the
// key is per request.
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
		key := fmt.Sprintf("product:%s:req%d", id, requests.Add(1))
		e := lookup(key)
		if e == nil {
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
