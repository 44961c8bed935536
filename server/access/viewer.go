package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// Viewer is who asks: the operator (the API token, as a bearer header or
// the token's session), a user signed in with GitHub, or nobody.
type Viewer struct {
	// Operator holds the API token: automation and operators see every run.
	Operator bool
	// User is the GitHub user signed in, or nil.
	User *User
	// token is User's GitHub token, only ever sent to GitHub.
	token string
}

// Viewer identifies a request's viewer. A cookie that does not open, or
// an expired session, is nobody.
func (a *Authorizer) Viewer(r *http.Request) Viewer {
	if a.cfg.APIToken != "" {
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.APIToken)) == 1 {
			return Viewer{Operator: true}
		}
		if c, err := r.Cookie(operatorCookie); err == nil &&
			subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.operatorMAC())) == 1 {
			return Viewer{Operator: true}
		}
	}
	if a.seal == nil {
		return Viewer{}
	}
	c, err := r.Cookie(userCookie)
	if err != nil {
		return Viewer{}
	}
	var s session
	if err := a.seal.open(userCookie, c.Value, &s); err != nil || expired(s.Expires, a.cfg.Now()) || s.Token == "" {
		return Viewer{}
	}
	return Viewer{User: &User{ID: s.ID, Login: s.Login}, token: s.Token}
}

// operatorMAC is the API-token session's cookie value: a MAC of the token,
// never the token.
func (a *Authorizer) operatorMAC() string {
	m := hmac.New(sha256.New, []byte(a.cfg.APIToken))
	m.Write([]byte("memgate/session"))
	return hex.EncodeToString(m.Sum(nil))
}

// IsAPIToken reports whether token is the API token.
func (a *Authorizer) IsAPIToken(token string) bool {
	return a.cfg.APIToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.cfg.APIToken)) == 1
}
