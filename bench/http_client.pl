#!/usr/bin/perl
# The Perl peer of bench/http_clients.py: AnyEvent::HTTP on EV.
#
#   perl http_client.pl URL COUNT CONCURRENCY SIZE [CA_FILE]
#
# Fetches URL COUNT times with http_get, CONCURRENCY requests in flight
# ($AnyEvent::HTTP::MAX_PER_HOST = CONCURRENCY, persistent => 1, keepalive
# => 1): the first CONCURRENCY are issued at once, each callback issues the
# next.  Every response must be status 200 with a body of SIZE bytes; the
# first one that is not stops the run with a message on stderr and exit
# status 1.  With CA_FILE (https URLs) the server certificate is verified
# against it, host name included (verify => 1, verify_peername => "https").
#
# Prints one JSON line: {"count": N, "bytes": B, "secs": S, "impl": ...},
# S measured from the first request issued to the last callback (module
# loading and startup excluded).

use strict;
use warnings;

use EV;
use AnyEvent;
use AnyEvent::HTTP;
use Time::HiRes ();

my ($url, $count, $conc, $size, $ca) = @ARGV;
die "usage: $0 URL COUNT CONCURRENCY SIZE [CA_FILE]\n" unless defined $size;

$AnyEvent::HTTP::MAX_PER_HOST = $conc;

my %opts = (persistent => 1, keepalive => 1, timeout => 60);
# one hash for every request: with cache => 1 AnyEvent::Handle makes one
# AnyEvent::TLS context from it and reuses it for every connection
$opts{tls_ctx} = { cache => 1, verify => 1, verify_peername => "https", ca_file => $ca }
   if defined $ca;

my ($issued, $done, $bytes) = (0, 0, 0);
my $cv = AE::cv;
my $error;

my $on_done;
my $issue = sub {
   ++$issued;
   http_get $url, %opts, $on_done;
};
$on_done = sub {
   my ($body, $hdr) = @_;
   return if defined $error;
   if ($hdr->{Status} != 200 or !defined $body or length $body != $size) {
      $error = sprintf "response %d: status %s (%s), %s bytes; want 200 and %d bytes\n",
         $done + 1, $hdr->{Status}, $hdr->{Reason},
         (defined $body ? length $body : "no"), $size;
      return $cv->send;
   }
   ++$done;
   $bytes += length $body;
   if ($issued < $count) {
      $issue->();
   } elsif ($done == $count) {
      $cv->send;
   }
};

AnyEvent::detect eq "AnyEvent::Impl::EV"
   or die "AnyEvent chose " . AnyEvent::detect . ", not EV\n";

my $t0 = Time::HiRes::time;
$issue->() for 1 .. ($conc < $count ? $conc : $count);
$cv->recv;
my $secs = Time::HiRes::time - $t0;

if (defined $error) {
   print STDERR $error;
   exit 1;
}

printf "{\"count\": %d, \"bytes\": %d, \"secs\": %.6f, \"impl\": \"AnyEvent::HTTP %s, %s\"}\n",
   $done, $bytes, $secs, $AnyEvent::HTTP::VERSION, AnyEvent::detect;
