#!/usr/bin/perl
# A parallel finger client on tcp_connect and an io watcher.  Twin: finger.py.
# usage: perl finger.pl HOST PORT USER...
use strict;
use warnings;
use AnyEvent;
use AnyEvent::Socket;

$| = 1; # print each line at once

sub finger($$$) {
   my ($user, $host, $port) = @_;

   # use a condvar to return results
   my $cv = AE::cv;

   # connect, keeping the guard until the callback has run
   my $connecting; $connecting = tcp_connect $host, $port, sub {
      undef $connecting; # the attempt is over, one way or the other

      # the callback receives the socket - or nothing, and the reason in $!
      my ($fh) = @_
         or return $cv->send ("$host: $!\n");

      # now write the user name
      syswrite $fh, "$user\015\012";

      my $response = "";

      # register a read watcher
      my $read_watcher; $read_watcher = AE::io $fh, 0, sub {
         my $len = sysread $fh, $response, 1024, length $response;
         return if !defined $len && $!{EAGAIN}; # spurious wake-up: wait more
         if (!$len) {
            # we are done, or an error occurred, lets ignore the latter
            undef $read_watcher; # no longer interested
            $cv->send ($response); # send results
         }
      };
   };

   # pass $cv to the caller
   $cv
}

my ($host, $port, @users) = @ARGV;

# start all requests at once ...
my @requests = map { [$_, finger $_, $host, $port] } @users;

# ... then wait for the answers in turn
for my $request (@requests) {
   my ($user, $cv) = @$request;
   my $response = $cv->recv;
   $response =~ s/\015\012/\n/g;
   print "== $user\n$response";
}
