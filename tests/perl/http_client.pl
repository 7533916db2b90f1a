#!/usr/bin/perl
# The Perl side of the HTTP client's differential tests: the real
# AnyEvent::HTTP (on EV) runs a list of requests.
#
# usage: perl http_client.pl < REQUESTS.json
#
# REQUESTS is a JSON array of {"method", "url", "opts"}.  opts may hold
# recurse, headers, timeout, body, persistent, keepalive and proxy
# ([host, port, scheme]), passed to http_request as they are, and
#   tls_ctx          "low", "high" or a hash of AnyEvent::TLS->new arguments
#   cookie_jar       true: use the one jar the whole list shares
#   on_header_false  true: an on_header callback returning false
#   on_body_collect  true: an on_body callback collecting the chunks
# The requests run one after another, each started from the callback of the
# one before.  stdout: one JSON array, per request
#   {"body": BODY, "headers": HEADERS, "jar": JAR, "on_body": [CHUNK...]}
# ("jar" after the request when it used the jar, "on_body" when collected).
# Strings are bytes as code points 0-255 (in Python: .encode("latin-1")); a
# Redirect header is [BODY, HEADERS] of the response that redirected.

use strict;
use warnings;
use EV;
use AnyEvent;
use AnyEvent::HTTP;
use JSON::XS ();

alarm 60;    # never outlive a broken test run

my $json = JSON::XS->new->utf8->canonical;
my $requests = $json->decode (do { local $/; binmode STDIN; <STDIN> });
my (%jar, @results);
my $done = AE::cv;

sub run_next {
   my $req = shift @$requests
      or return $done->send;
   my %opts = %{ $req->{opts} || {} };
   my %arg = map +($_ => $opts{$_}),
      grep exists $opts{$_}, qw(recurse headers timeout body persistent keepalive proxy tls_ctx);
   utf8::downgrade $arg{body} if defined $arg{body};    # bytes, as code points
   $arg{cookie_jar} = \%jar if $opts{cookie_jar};
   $arg{on_header} = sub { 0 } if $opts{on_header_false};
   my @chunks;
   $arg{on_body} = sub { push @chunks, $_[0]; 1 } if $opts{on_body_collect};

   http_request $req->{method}, $req->{url}, %arg, sub {
      my ($body, $headers) = @_;
      my %result = (body => $body, headers => $headers);
      $result{jar} = \%jar if $opts{cookie_jar};
      $result{on_body} = \@chunks if $opts{on_body_collect};
      # encode now: the jar changes with the requests that follow
      push @results, $json->encode (\%result);
      run_next ();
   };
}

die "not on EV but $AnyEvent::MODEL\n" unless AnyEvent::detect eq "AnyEvent::Impl::EV";
run_next ();
$done->recv;
binmode STDOUT;
print "[", (join ",", @results), "]\n";
