package access

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Cookies hold what a browser carries between requests, sealed: AES-256-GCM
// under a key derived from the App's client secret, so they can be neither
// read (the user's GitHub token rides in the session) nor forged, and each
// names its purpose, so a state cookie cannot pass for a session. Rotating
// the client secret signs everyone out.

const (
	userCookie  = "memgate_user"  // a GitHub user's session
	stateCookie = "memgate_oauth" // a sign-in in flight: state and next
	// operatorCookie is the API-token session: an HMAC of the token.
	operatorCookie = "memgate_session"
)

var errBadCookie = errors.New("cookie does not open")

// session is a signed-in GitHub user. Token is theirs, used only to ask
// GitHub what they may read; it never leaves the sealed cookie in clear.
type session struct {
	ID      int64  `json:"i"`
	Login   string `json:"l"`
	Token   string `json:"t"`
	Expires int64  `json:"e"` // unix seconds
}

// pending is a sign-in in flight, bound to the browser that started it.
type pending struct {
	State   string `json:"s"`
	Next    string `json:"n"`
	Expires int64  `json:"e"`
}

type sealer struct{ aead cipher.AEAD }

func newSealer(secret string) (*sealer, error) {
	if secret == "" {
		return nil, errors.New("access: no secret to seal sessions with")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("memgate/session-key/v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal encodes v for a cookie; purpose is authenticated with it.
func (s *sealer) seal(purpose string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(purpose))), nil
}

// open decodes a sealed value; anything tampered with, sealed under
// another key or for another purpose is errBadCookie.
func (s *sealer) open(purpose, text string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return errBadCookie
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(purpose))
	if err != nil {
		return errBadCookie
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: %v", errBadCookie, err)
	}
	return nil
}

func expired(unix int64, now time.Time) bool { return now.Unix() >= unix }

// randomState is an unguessable OAuth state: 256 random bits.
func randomState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
