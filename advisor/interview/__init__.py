"""Understanding the user: the chat interview turns free text into Profile slots."""
