package fanout

// Subject prefixes and stream names of the two JetStream stages.
const (
	// PostsStream holds every accepted post (limits retention, file storage).
	PostsStream = "POSTS"
	// PostsSubjectPrefix is followed by the author's username.
	PostsSubjectPrefix = "starling.posts."
	// DeliveriesStream is the work queue of delivery batches.
	DeliveriesStream = "DELIVERIES"
	// deliveriesSubjectPrefix is followed by the batch's lane number.
	deliveriesSubjectPrefix = "starling.deliver."
	// FanoutConsumer is the durable pull consumer on PostsStream.
	FanoutConsumer = "fanout"
	// SenderConsumer is the durable pull consumer of later pages (lanes 1
	// and up) on DeliveriesStream.
	SenderConsumer = "sender"
	// firstSenderConsumer is the durable pull consumer of first pages
	// (lane 0) on DeliveriesStream.
	firstSenderConsumer = "sender-first"
	// BatchSize is the largest number of recipients in one Batch.
	BatchSize = 500
)

// PostSubject is the JetStream subject of the author's posts.
func PostSubject(author string) string { return PostsSubjectPrefix + author }
