"""What callers say in the benchmark (with the reference text), what the agent says, and the
domain vocabulary an agent profile would list. Fixed lists: every run measures the same speech."""

from __future__ import annotations

# (category, reference text). Written the way a careful transcriber would; the WER normalizer
# (tests.peers.wer) makes "5" and "five", "2:30" and "two thirty" compare equal.
UTTERANCES: list[tuple[str, str]] = [
    ("number", "I need 5 tickets for the show."),
    ("number", "There are 12 people in my group."),
    ("number", "My order number is 48213."),
    ("number", "The total came to 340 dollars."),
    ("number", "I was charged twice, 79 dollars each time."),
    ("number", "We have about 250 employees."),
    ("number", "Room 1504, please."),
    ("number", "It should be 15 percent off."),
    ("number", "My account number is 7 7 3 1 9 0 2."),
    ("number", "Flight 2286 to Denver."),
    ("date", "Can I come in on Tuesday, March 3rd?"),
    ("date", "My birthday is July 14th, 1986."),
    ("date", "The payment was due on the 21st."),
    ("date", "Let's do next Friday instead."),
    ("date", "I moved in on September 30th."),
    ("date", "Is the office open on December 26th?"),
    ("date", "The contract ends in January 2027."),
    ("date", "Monday the 2nd works for me."),
    ("time", "Can we make it 2:30 in the afternoon?"),
    ("time", "I'll be there at 9 in the morning."),
    ("time", "Any time after 4:45 is fine."),
    ("time", "The delivery came at 11:15 last night."),
    ("time", "Could you call me back at noon?"),
    ("time", "We close at 6 PM on weekdays."),
    ("time", "Half past three would be great."),
    ("address", "I live at 1425 Maple Avenue."),
    ("address", "Send it to 88 Harbor Street, Apartment 4B."),
    ("address", "The address is 310 West Pine Road, Springfield."),
    ("address", "My zip code is 94110."),
    ("address", "It's the blue house on Oak Lane."),
    ("address", "We're at 2700 Lakeshore Drive, Suite 200."),
    ("address", "The zip is 0 2 1 3 9."),
    ("name", "My name is Sarah Johnson."),
    ("name", "This is Michael Chen calling from Acme."),
    ("name", "Can I speak with Doctor Patel?"),
    ("name", "I'm calling for my mother, Maria Garcia."),
    ("name", "The appointment is under Robert Williams."),
    ("name", "Please ask for Emily at the front desk."),
    ("name", "My last name is Nguyen."),
    ("name", "I spoke with David yesterday."),
    ("spelled", "My phone number is 415 555 0142."),
    ("spelled", "Call me back at 212 555 0199."),
    ("spelled", "The code is 4 8 2 9."),
    ("spelled", "That's S M I T H."),
    ("spelled", "My member ID is 6 0 3 3 8 1."),
    ("spelled", "The last four digits are 9 0 1 7."),
    ("spelled", "The confirmation code is 5 2 7 7 1 4."),
    ("spelled", "Extension 3 0 4, please."),
    ("yesno", "Yes."),
    ("yesno", "No."),
    ("yesno", "Yes, that's right."),
    ("yesno", "No, that's not correct."),
    ("yesno", "Yes, please."),
    ("yesno", "No thank you."),
    ("yesno", "Sure, go ahead."),
    ("yesno", "Correct."),
    ("request", "I'd like to book an appointment for a cleaning."),
    ("request", "I want to cancel my subscription."),
    ("request", "Can you tell me my account balance?"),
    ("request", "I need to reschedule my appointment."),
]

# What an agent profile for these calls would list as its vocabulary: the names, streets and words
# of its business. It contains the test set's proper nouns, so the prompt result is a best case.
VOCABULARY: list[str] = [
    "Acme", "Sarah Johnson", "Michael Chen", "Doctor Patel", "Maria Garcia", "Robert Williams",
    "Emily", "Nguyen", "Maple Avenue", "Harbor Street", "West Pine Road", "Springfield", "Oak Lane",
    "Lakeshore Drive", "Denver", "appointment", "cleaning", "subscription", "confirmation code",
    "member ID", "zip code", "extension",
]  # fmt: skip

# What the agent says: short confirmations to multi-sentence answers (TTS timing).
AGENT_SENTENCES: list[str] = [
    "Okay.",
    "Thank you.",
    "Got it, one moment please.",
    "Could you spell your last name for me?",
    "What time works best for you?",
    "Your appointment is on Tuesday, March 3rd at 2:30 in the afternoon.",
    "I have you down for 5 tickets. Is that right?",
    "Let me check that for you. This will only take a second.",
    "Your account balance is 340 dollars, and the next payment is due on the 21st.",
    "I'm sorry, I didn't catch that. Could you say it again?",
    "Hello, thank you for calling Acme. This is your phone agent speaking. How can I help you today?",
    "We are open Monday to Friday from 9 in the morning until 6 in the evening.",
    "I can book you with Doctor Patel on Thursday or Friday. Which day do you prefer?",
    "To confirm, your phone number is 415 555 0142.",
    "Your confirmation code is 5 2 7 7 1 4. Please keep it for your records.",
    "I've cancelled your subscription. You will receive an email confirmation shortly. "
    "Is there anything else I can help you with?",
    "Please hold while I transfer you to the front desk.",
    "The office is at 2700 Lakeshore Drive, Suite 200, on the second floor, next to the pharmacy.",
    "Thank you for calling. Have a great day. Goodbye!",
    "I understand. Let me look at the options we have. We can refund the second charge today, or "
    "we can apply it as a credit to your next bill. Which would you prefer?",
]
