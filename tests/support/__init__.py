"""Test helpers shared by the suite: the API client, real servers, generated videos, shared media."""
