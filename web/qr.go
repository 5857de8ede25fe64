package web

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"

	qrcode "github.com/skip2/go-qrcode"
	"starling.dev/starling"
)

// qrSVG draws the QR code of content as an SVG image: one path of unit
// squares on a white square, quiet zone included, so that it scales
// without blur and a phone's camera reads it in dark mode too.
func qrSVG(content string) ([]byte, error) {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return nil, err
	}
	bits := q.Bitmap() // with its 4-module quiet zone
	n := strconv.Itoa(len(bits))
	b := make([]byte, 0, 16*len(bits)*len(bits)/3)
	b = append(b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 `+n+` `+n+`" shape-rendering="crispEdges">`...)
	b = append(b, `<rect width="`+n+`" height="`+n+`" fill="#fff"/><path fill="#000" d="`...)
	for y, row := range bits {
		for x, dark := range row {
			if dark {
				b = append(b, 'M')
				b = strconv.AppendInt(b, int64(x), 10)
				b = append(b, ' ')
				b = strconv.AppendInt(b, int64(y), 10)
				b = append(b, "h1v1h-1z"...)
			}
		}
	}
	return append(b, `"/></svg>`...), nil
}

// qrCacheControl: an author's QR code changes only if the domain does.
const qrCacheControl = "public, max-age=86400"

// qr handles GET /u/{username}/qr.svg: the QR code of the author's roster
// URI. It depends on the name and domain alone, so no store is asked.
func (p *Pages) qr(w http.ResponseWriter, r *http.Request) {
	username := r.PathValue("username")
	if !starling.ValidUsername(username) {
		p.notFound(w, r, "There is no author by that name here.")
		return
	}
	uri := string(p.rosterURI(username))
	sum := sha256.Sum256([]byte(uri))
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", qrCacheControl)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	svg, err := qrSVG(uri)
	if err != nil {
		p.fail(w, r, "qr code", err)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write(svg)
}
