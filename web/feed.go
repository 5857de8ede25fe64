package web

import (
	"net/http"
	"time"

	"starling.dev/starling/internal/atom"
)

// feed handles GET /u/{username}.atom: the author's Atom feed (RFC 4287),
// newest first, each entry as the atom delivery payload writes it plus a
// link to the post's page.
func (p *Pages) feed(w http.ResponseWriter, r *http.Request) {
	username := r.PathValue("username")
	prof, ok := p.lookupAuthor(w, r, username)
	if !ok {
		return
	}
	posts, err := p.store.Statuses(r.Context(), username, "", p.cfg.FeedSize)
	if err != nil {
		p.fail(w, r, "statuses", err)
		return
	}
	base := p.baseURL(r)
	updated := prof.CreatedAt
	if len(posts) > 0 {
		updated = posts[0].CreatedAt
	}
	b := make([]byte, 0, 1024+512*len(posts))
	b = append(b, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+`<feed xmlns="`+atom.Namespace+`"><id>tag:`...)
	b = atom.AppendText(b, p.cfg.Domain)
	b = append(b, ',')
	b = append(b, prof.CreatedAt.UTC().Format(time.DateOnly)...)
	b = append(b, ":author:"...)
	b = append(b, username...)
	b = append(b, `</id><title>`...)
	b = atom.AppendText(b, prof.Name()+" (@"+username+")")
	b = append(b, `</title>`...)
	if prof.Bio != "" {
		b = append(b, `<subtitle>`...)
		b = atom.AppendText(b, prof.Bio)
		b = append(b, `</subtitle>`...)
	}
	b = append(b, `<updated>`...)
	b = append(b, updated.UTC().Format(time.RFC3339Nano)...)
	b = append(b, `</updated><link rel="self" type="application/atom+xml" href="`...)
	b = atom.AppendAttr(b, base+"/u/"+username+".atom")
	b = append(b, `"/><link rel="alternate" type="text/html" href="`...)
	b = atom.AppendAttr(b, base+"/u/"+username)
	b = append(b, `"/><author><name>`...)
	b = atom.AppendText(b, prof.Name())
	b = append(b, `</name><uri>xmpp:`...)
	b = atom.AppendText(b, p.jid(username))
	b = append(b, `</uri></author><generator>Starling</generator>`...)
	for _, post := range posts {
		b = append(b, '\n')
		b = atom.AppendEntry(b, atom.Entry{Domain: p.cfg.Domain, Link: base + "/u/" + username + "/statuses/" + post.ID}, post)
	}
	b = append(b, "\n</feed>\n"...)
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
