// Live updates of an author's page: new posts appear at the top and deleted
// ones vanish, from the API's event stream. Text is set with textContent
// only, so markup in a post shows as text. Without this script the page is
// complete; it only misses what happens after it was loaded.
'use strict';
(function () {
	var list = document.getElementById('posts');
	var status = document.getElementById('live-status');
	if (!list || !status || !list.dataset.events || !window.EventSource) {
		return;
	}
	var author = list.dataset.author;
	var newest = list.dataset.newest || '';
	var months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
	var source = null;
	var retryTimer = 0;

	// ago writes what web/timefmt.go's ago writes.
	function ago(t) {
		var s = (Date.now() - t.getTime()) / 1000;
		if (s < 45) { return 'just now'; }
		if (s < 3600) { return Math.max(1, Math.floor(s / 60)) + ' min ago'; }
		if (s < 86400) { return Math.floor(s / 3600) + ' h ago'; }
		if (s < 7 * 86400) { return Math.floor(s / 86400) + ' d ago'; }
		return t.getUTCDate() + ' ' + months[t.getUTCMonth()] + ' ' + t.getUTCFullYear();
	}

	function pad(n) { return (n < 10 ? '0' : '') + n; }

	function exact(t) {
		return t.getUTCFullYear() + '-' + pad(t.getUTCMonth() + 1) + '-' + pad(t.getUTCDate()) + ' ' +
			pad(t.getUTCHours()) + ':' + pad(t.getUTCMinutes()) + ' UTC';
	}

	function show(state, text) {
		status.className = 'live ' + state;
		status.textContent = text;
	}

	function render(s) {
		var t = new Date(s.created_at);
		var li = document.createElement('li');
		li.className = 'post';
		li.id = 'p-' + s.id;
		var text = document.createElement('p');
		text.className = 'text';
		text.textContent = s.text;
		var meta = document.createElement('p');
		meta.className = 'meta';
		var link = document.createElement('a');
		link.href = '/u/' + encodeURIComponent(author) + '/statuses/' + encodeURIComponent(s.id);
		var time = document.createElement('time');
		time.dateTime = s.created_at;
		time.title = exact(t);
		time.textContent = ago(t);
		link.appendChild(time);
		meta.appendChild(link);
		li.appendChild(text);
		li.appendChild(meta);
		return li;
	}

	function onStatus(e) {
		var s = JSON.parse(e.data);
		if (document.getElementById('p-' + s.id)) {
			return;
		}
		list.insertBefore(render(s), list.firstChild);
		newest = s.id;
		document.getElementById('no-posts').hidden = true;
	}

	function onDelete(e) {
		var d = JSON.parse(e.data);
		var li = document.getElementById('p-' + d.id);
		if (li) {
			li.remove();
		}
		document.getElementById('no-posts').hidden = list.children.length > 0;
	}

	function connect() {
		retryTimer = 0;
		var url = list.dataset.events;
		if (newest) {
			url += '?last_event_id=' + encodeURIComponent(newest);
		}
		source = new EventSource(url);
		source.addEventListener('open', function () { show('on', 'Live: new posts appear here as they are made.'); });
		source.addEventListener('status', onStatus);
		source.addEventListener('delete', onDelete);
		source.addEventListener('error', function () {
			if (source.readyState === EventSource.CONNECTING) {
				// The browser reconnects by itself, sending Last-Event-ID.
				show('wait', 'Connection lost; reconnecting…');
				return;
			}
			// Refused (too many clients, or the server is going away): the
			// browser gives up, so try again later from the newest post.
			source.close();
			show('off', 'Live updates paused; retrying in 10 s.');
			if (!retryTimer) {
				retryTimer = setTimeout(connect, 10000);
			}
		});
	}

	function refreshTimes() {
		var times = list.querySelectorAll('time[datetime]');
		for (var i = 0; i < times.length; i++) {
			times[i].textContent = ago(new Date(times[i].dateTime));
		}
	}

	show('wait', 'Connecting for live updates…');
	connect();
	setInterval(refreshTimes, 30000);
})();
