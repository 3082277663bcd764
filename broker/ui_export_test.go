package broker

// UIMaxStreams is how many dashboard streams a server keeps open, for tests.
const UIMaxStreams = uiMaxStreams
