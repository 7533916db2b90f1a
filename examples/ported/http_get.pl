#!/usr/bin/perl
# HTTP/1.0 GET requests on AnyEvent::Handle's read queue.  Twin: http_get.py.
# usage: perl http_get.pl HOST PORT PATH...
use strict;
use warnings;
use AnyEvent;
use AnyEvent::Handle;

$| = 1; # print each line at once

my %handles; # open connections: this hash is what keeps each handle alive

sub http_get {
   my ($host, $port, $uri, $cb) = @_;

   # store results here
   my ($response, $header, $body) = ("", "", "");

   my $handle = new AnyEvent::Handle
      connect  => [$host => $port],
      on_error => sub {
         my ($handle, $fatal, $message) = @_;
         $cb->("HTTP/1.0 500 $!"); # $! is the errno, $message says the same
         delete $handles{$handle};
         $handle->destroy; # explicitly destroy handle
      },
      on_eof   => sub {
         my ($handle) = @_;
         $cb->($response, $header, $body);
         delete $handles{$handle};
         $handle->destroy; # explicitly destroy handle
      };
   $handles{$handle} = $handle;

   $handle->push_write ("GET $uri HTTP/1.0\015\012\015\012");

   # now fetch response status line
   $handle->push_read (line => sub {
      my ($handle, $line) = @_;
      $response = $line;
   });

   # then the headers
   $handle->push_read (line => "\015\012\015\012", sub {
      my ($handle, $line) = @_;
      $header = $line;
   });

   # and finally handle any remaining data as body
   $handle->on_read (sub {
      $body .= $_[0]->rbuf;
      $_[0]->rbuf = "";
   });
}

my ($host, $port, @uris) = @ARGV;
my (%result, $done);

# all requests in parallel; begin/end count the outstanding ones
$done = AE::cv;
for my $uri (@uris) {
   $done->begin;
   http_get $host, $port, $uri, sub {
      $result{$uri} = [@_];
      $done->end;
   };
}
$done->recv;

# print the answers in the order of the arguments
for my $uri (@uris) {
   my ($response, $header, $body) = @{ $result{$uri} };
   print "== $uri\n$response\n";
   next unless defined $header;
   my %header = map { /^([^:]+):\s*(.*)/ ? (lc $1, $2) : () } split /\015\012/, $header;
   print "$_: $header{$_}\n" for grep exists $header{$_}, "content-type", "content-length";
   my ($first) = $body =~ /^(.{0,40})/; # at most 40 characters of the first line
   printf "body (%d bytes): %s\n", length $body, $first;
}
