module concierge/pause

go 1.24
