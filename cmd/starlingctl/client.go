package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxRetries bounds the retries of a request answered 429 or 503.
const maxRetries = 5

// client calls the API with a bearer token.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(base, token string) *client {
	return &client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}
}

// apiError is an error answer of the API.
type apiError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (e *apiError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%d %s", e.Status, e.Title)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail)
}

// do sends a request with a replayable body and decodes a JSON answer into
// out (nil: ignore it). Answers 429 and 503 are retried after their
// Retry-After, at most maxRetries times.
func (c *client) do(ctx context.Context, method, path string, body []byte, contentType string, out any) error {
	return c.doWith(ctx, method, path, body, contentType, nil, out)
}

// doWith is do with extra request headers, sent alike on every retry.
func (c *client) doWith(ctx context.Context, method, path string, body []byte, contentType string, header http.Header, out any) error {
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		resp, err := c.send(ctx, method, path, rd, int64(len(body)), contentType, header)
		if err != nil {
			return err
		}
		wait, retry := retryAfter(resp)
		if retry && attempt < maxRetries {
			resp.Body.Close()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		return decodeAnswer(resp, out)
	}
}

// send makes one request; size is the body's length, -1 when unknown.
func (c *client) send(ctx context.Context, method, path string, body io.Reader, size int64, contentType string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// retryAfter reports whether an answer asks to be retried, and when.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 0 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// decodeAnswer turns an error answer into an *apiError and decodes a
// successful one into out.
func decodeAnswer(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(e)
		return e
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

func pathEscape(s string) string { return url.PathEscape(s) }
