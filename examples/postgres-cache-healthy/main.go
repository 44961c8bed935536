// postgres-cache-healthy is postgres-cache-leak fixed: the memo is keyed
// by the customer alone, so it holds one result per customer, refreshed
// after a minute.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

type order struct {
	ID    int    `json:"id"`
	Item  string `json:"item"`
	Cents int    `json:"cents"`
}

type result struct {
	body    []byte
	fetched time.Time
}

var (
	mu    sync.Mutex
	memo  = map[string]*result{}
	trace atomic.Int64
)

// rememberResult keeps a query's encoded result.
func rememberResult(key string, orders []order) *result {
	body, _ := json.Marshal(orders)
	r := &result{body: append(make([]byte, 0, 2048), body...), fetched: time.Now()}
	mu.Lock()
	memo[key] = r
	mu.Unlock()
	return r
}

func recall(key string) *result {
	mu.Lock()
	defer mu.Unlock()
	return memo[key]
}

func queryOrders(ctx context.Context, pool *pgxpool.Pool, customer string) ([]order, error) {
	rows, err := pool.Query(ctx, "SELECT id, item, cents FROM orders WHERE customer = $1 ORDER BY id", customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []order
	for rows.Next() {
		var o order
		if err := rows.Scan(&o.ID, &o.Item, &o.Cents); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func handleOrders(pool *pgxpool.Pool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		customer := r.URL.Query().Get("customer")
		trace.Add(1)
		key := "orders:" + customer
		res := recall(key)
		if res == nil || time.Since(res.fetched) > time.Minute {
			orders, err := queryOrders(r.Context(), pool, customer)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			res = rememberResult(key, orders)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(res.body)
	}
}

func setup(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer int NOT NULL, item text NOT NULL, cents int NOT NULL);
		TRUNCATE orders;
		INSERT INTO orders (customer, item, cents) SELECT 1 + i % 3, 'item ' || i, 100 * i FROM generate_series(1, 30) AS i;`)
	return err
}

func main() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	if err := setup(ctx, pool); err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/orders", handleOrders(pool))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
