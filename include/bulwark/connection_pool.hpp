// bulwark/connection_pool.hpp — keeps up to max_connections connections open and lends them out,
// most recently returned first; closes idle and aged ones; callers wait FIFO when all are lent.
//
//   bulwark::ConnectionPool<std::unique_ptr<httplib::Client>> pool{
//       [] { return std::make_unique<httplib::Client>("127.0.0.1", 8080); }, {.max_connections = 4}};
//   auto res = pool.execute([](auto& client) { return client->Get("/users/123"); });
//   bulwark::Pipeline stack{bulwark::CircuitBreaker{}, std::ref(pool)};   // the pool goes last
#pragma once

#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "context.hpp"
#include "detail/validate.hpp"
#include "detail/wait.hpp"
#include "errors.hpp"
#include "events.hpp"

namespace bulwark {

/// Tuning of a ConnectionPool. Defaults follow the seed's undici pool settings.
struct ConnectionPoolConfig {
  /// Connections open at once, lent or idle (seed: pool.connections). At least 1.
  std::size_t max_connections = 10;
  /// An idle connection unused for this long is closed instead of reused (seed: keepAliveTimeout).
  /// Above 0.
  std::chrono::milliseconds idle_timeout{4'000};
  /// A connection this old (since it was opened) is closed and replaced instead of reused
  /// (seed: keepAliveMaxTimeout). Above 0.
  std::chrono::milliseconds max_lifetime{600'000};
  /// Longest acquire() waits for a connection when all are lent, then pool_exhausted_error. Above 0.
  std::chrono::milliseconds acquire_timeout{10'000};
  /// Receives pool_waited when an acquire() that had to wait is handed a connection (or a place
  /// to open one in; delay = time waited) and pool_exhausted when acquire_timeout ends a wait
  /// (delay = time waited). A wait ended by ctx.stop, ctx.deadline or close() reports nothing.
  /// Empty: no events are made, and the clock is read no more often.
  EventListener on_event{};

  /// Throws config_error naming the first bad field.
  void validate() const {
    detail::require(max_connections >= 1, "ConnectionPoolConfig", "max_connections",
                    "must be at least 1", max_connections);
    detail::require(idle_timeout.count() > 0, "ConnectionPoolConfig", "idle_timeout",
                    "must be above 0", idle_timeout);
    detail::require(max_lifetime.count() > 0, "ConnectionPoolConfig", "max_lifetime",
                    "must be above 0", max_lifetime);
    detail::require(acquire_timeout.count() > 0, "ConnectionPoolConfig", "acquire_timeout",
                    "must be above 0", acquire_timeout);
  }
};

/// A snapshot of a pool; may be stale as soon as it is returned. When no call is under way,
/// open == idle + in_use and created == open + discarded.
struct ConnectionPoolMetrics {
  std::size_t open = 0;       ///< Connections open now: idle, lent, or being opened or closed.
  std::size_t idle = 0;       ///< Open connections waiting in the pool to be reused.
  std::size_t in_use = 0;     ///< open - idle: lent out (or being opened or closed).
  std::size_t created = 0;    ///< Connections the factory returned, ever.
  std::size_t reused = 0;     ///< Leases served by a connection that had been used before.
  std::size_t discarded = 0;  ///< Connections the pool closed: stale, failed, discarded or closed.
};

/// A pool of up to `max_connections` connections made by a factory, lent out as RAII leases.
/// `Connection` may be move-only (say, std::unique_ptr<httplib::Client>); destroying one closes
/// it, and the pool always does that outside its lock. Thread-safe: every member but the move
/// operations and the destructor may be called concurrently. Leases refer to the pool's state,
/// which a move hands to the new pool: no Lease may outlive it, and no call may still be in
/// acquire() when the pool that owns it is destroyed or assigned to. Lending and returning an
/// idle connection take the pool's mutex once each, read the clock once each, and never allocate.
template <class Connection, class Clock = SteadyClock>
class ConnectionPool {
  static_assert(std::is_object_v<Connection> && !std::is_const_v<Connection>,
                "ConnectionPool: Connection must be a non-const object type");
  static_assert(std::move_constructible<Connection>,
                "ConnectionPool: Connection must be move-constructible (the factory returns it)");
  static_assert(std::is_nothrow_destructible_v<Connection>,
                "ConnectionPool: destroying a Connection (closing it) must not throw");
  static_assert(
      std::is_same_v<typename Clock::time_point, SteadyClock::time_point>,
      "ConnectionPool: Clock::time_point must be SteadyClock's, so that Context::deadline "
      "compares with it");

  struct State;

 public:
  /// Exclusive use of one pooled connection; returns it to the pool on destruction.
  /// Movable, not copyable. Not thread-safe itself (like std::unique_ptr). Must not outlive
  /// the pool that lent it (or the pool that pool was moved to).
  class Lease {
   public:
    /// Takes over `other`'s connection; `other` is left empty.
    Lease(Lease&& other) noexcept
        : state_(std::exchange(other.state_, nullptr)), slot_(other.slot_) {}
    /// Returns the connection this lease held (if any), then takes over `other`'s.
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        reset(false);
        state_ = std::exchange(other.state_, nullptr);
        slot_ = other.slot_;
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    /// Returns the connection to the pool (or closes it when it is past max_lifetime or the
    /// pool is closed).
    ~Lease() { reset(false); }

    /// The leased connection. Requires a lease that holds one.
    [[nodiscard]] Connection& operator*() const noexcept {
      return *state_->slots[slot_].connection;
    }
    /// The leased connection's members. Requires a lease that holds one.
    [[nodiscard]] Connection* operator->() const noexcept {
      return std::addressof(*state_->slots[slot_].connection);
    }
    /// Whether this lease holds a connection (false after discard() or a move from it).
    [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }

    /// Closes the connection now instead of returning it for reuse (say, it is broken); its
    /// place in the pool goes to the oldest waiter. The lease is empty afterwards.
    void discard() noexcept { reset(true); }

   private:
    friend class ConnectionPool;
    Lease(State& state, std::size_t slot) noexcept : state_(&state), slot_(slot) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push  // g++ 12 -O3 misreads a disengaged std::optional<Lease> as read here
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
    void reset(bool discard) noexcept {
      if (state_ != nullptr) give_back(*std::exchange(state_, nullptr), slot_, discard);
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

    State* state_ = nullptr;
    std::size_t slot_ = 0;
  };

  /// Validates `config` (config_error) and starts empty: connections are opened on demand.
  /// `factory` opens a connection; it may be called from several threads at once, never under
  /// the pool's lock, and may throw (the exception reaches the caller of acquire()).
  explicit ConnectionPool(std::function<Connection()> factory, ConnectionPoolConfig config = {},
                          Clock clock = {})
      : state_((config.validate(),
                detail::require(static_cast<bool>(factory), "ConnectionPool", "factory",
                                "must not be empty", "an empty std::function"),
                std::make_unique<State>(std::move(factory), config, std::move(clock)))) {}

  /// Lends a connection: the most recently returned idle one that is still fresh (stale idle
  /// ones met on the way are closed), else a new one from the factory while fewer than
  /// max_connections are open, else the first one returned or freed, waiting first come first
  /// served. Throws pool_exhausted_error after acquire_timeout, cancelled_error when ctx.stop
  /// fires and deadline_exceeded_error when ctx.deadline passes (at once if already so when it
  /// would wait), bulwark::error when the pool is closed, or what the factory throws.
  [[nodiscard]] Lease acquire(const Context& ctx = {});

  /// Leases a connection and calls `f(connection, ctx)` if f takes both, else `f(connection)`;
  /// returns f's result. When f throws, the connection is closed rather than reused and the
  /// exception passes through unchanged. Throws what acquire() throws.
  template <class F>
  decltype(auto) execute(const Context& ctx, F&& f) {
    static_assert(
        std::invocable<F&, Connection&, const Context&> || std::invocable<F&, Connection&>,
        "ConnectionPool::execute: f must be callable as f(Connection&) or "
        "f(Connection&, const Context&)");
    Lease lease = acquire(ctx);
    try {
      if constexpr (std::invocable<F&, Connection&, const Context&>) {
        return f(*lease, ctx);
      } else {
        return f(*lease);
      }
    } catch (...) {
      lease.discard();
      throw;
    }
  }

  /// Same as execute(Context{}, f).
  template <class F>
  decltype(auto) execute(F&& f) {
    return execute(Context{}, std::forward<F>(f));
  }

  /// Counts of open, idle and lent connections and the lifetime totals.
  [[nodiscard]] ConnectionPoolMetrics metrics() const noexcept {
    const State& state = *state_;
    const std::scoped_lock lock{state.mutex};
    return ConnectionPoolMetrics{.open = state.open,
                                 .idle = state.idle_count,
                                 .in_use = state.open - state.idle_count,
                                 .created = state.created,
                                 .reused = state.reused,
                                 .discarded = state.discarded};
  }

  /// The configuration this pool was built with.
  [[nodiscard]] const ConnectionPoolConfig& config() const noexcept { return state_->config; }

  /// Closes every idle connection now and every lent one when its lease ends; wakes the callers
  /// waiting in acquire(), which throw bulwark::error, as does every later acquire(). A call that
  /// was already opening a connection, or had been handed one, keeps it until its lease ends.
  /// Idempotent.
  void close();

 private:
  // Each of the max_connections slots of State::slots is in one state:
  //
  //   free     -- acquire: no fresh idle connection, open < max_connections: reserved, open += 1;
  //               the factory runs outside the mutex --------------------------------> lent
  //   reserved -- the factory throws: the slot is freed (or goes to the oldest waiter) -> free
  //   lent     -- lease ends, connection fresh, pool open, a waiter queued: handed over -> lent
  //   lent     -- lease ends, connection fresh, pool open, nobody waiting: on top of the
  //               LIFO idle stack, stamped with its return time -------------------------> idle
  //   lent     -- discard(), f threw, age >= max_lifetime, or the pool closed -------> closing
  //   idle     -- acquire pops the top of the stack, fresh -----------------------------> lent
  //   idle     -- acquire meets it idle >= idle_timeout or aged >= max_lifetime; close() --> closing
  //   closing  -- connection destroyed outside the mutex; the slot goes to the oldest waiter
  //               as a reservation, or to the acquire that found it stale, else ------> free
  //
  // Invariant: callers wait only while every slot is taken and none is idle, because whatever
  // becomes available (a returned connection, a freed slot) goes to the oldest waiter first;
  // so a new arrival never overtakes a waiter. The idle stack is a ring buffer (stale ones are
  // taken off its bottom, where the least recently returned sit), the free slots a stack, both
  // preallocated for max_connections; a waiter is a node on its caller's stack. All waiters share
  // one condition variable: a hand-over wakes every waiter, and each checks its own node.
  // The mutex guards everything but a slot's connection and creation time, which belong to
  // whoever holds the slot (lease, factory call or closer). Events come only from a caller that
  // waited, after it has left the mutex: pool_waited when served, pool_exhausted on timeout.

  static constexpr std::size_t no_slot = static_cast<std::size_t>(-1);
  using time_point = typename Clock::time_point;
  using duration = typename Clock::duration;

  struct Slot {
    std::optional<Connection> connection;
    time_point created{};                // when the factory returned the connection
    time_point returned{};               // when it last became idle
    std::size_t next_closing = no_slot;  // links the slots one call is closing
  };

  // What a caller got: a slot holding a live connection, or a reserved slot to open one in.
  struct Grant {
    std::size_t slot = no_slot;
    bool has_connection = false;
  };

  struct Waiter {
    Waiter* prev = nullptr;
    Waiter* next = nullptr;
    Grant grant;  // set under the mutex by whoever serves this waiter and unlinks it
  };

  struct State {
    State(std::function<Connection()> factory_in, const ConnectionPoolConfig& config_in,
          Clock clock_in)
        : factory(std::move(factory_in)),
          config(config_in),
          clock(std::move(clock_in)),
          idle_timeout(clamped(config_in.idle_timeout)),
          max_lifetime(clamped(config_in.max_lifetime)),
          acquire_timeout(clamped(config_in.acquire_timeout)),
          slots(config_in.max_connections),
          idle(config_in.max_connections) {
      free.reserve(config_in.max_connections);
      for (std::size_t i = config_in.max_connections; i > 0; --i) free.push_back(i - 1);
    }

    // A config duration in the clock's unit, capped so that `now + d` cannot overflow:
    // milliseconds::max() means "never".
    static duration clamped(std::chrono::milliseconds d) {
      constexpr auto cap =
          std::chrono::duration_cast<std::chrono::milliseconds>(duration::max() / 4);
      return std::chrono::duration_cast<duration>(d < cap ? d : cap);
    }

    const std::function<Connection()> factory;  // called only outside the mutex
    const ConnectionPoolConfig config;
    const Clock clock;
    const duration idle_timeout, max_lifetime, acquire_timeout;

    mutable std::mutex mutex;
    std::condition_variable_any served;  // notified when a waiter is served or the pool closes
    std::vector<Slot> slots;             // fixed size max_connections; never reallocated
    std::vector<std::size_t> free;       // stack of free slot indices
    std::vector<std::size_t> idle;       // ring buffer of idle slot indices, newest on top
    std::size_t idle_bottom = 0, idle_count = 0;
    Waiter* first_waiter = nullptr;
    Waiter* last_waiter = nullptr;
    std::size_t open = 0, created = 0, reused = 0, discarded = 0;
    bool closed = false;
  };

  static constexpr const char* closed_message = "bulwark: connection pool is closed";

  // Pops fresh idle connections for the caller; chains stale ones met on the way onto `closing`.
  // The idle connection the calling thread returned last, per thread (one pool at a time).
  struct LastReturned {
    const State* state = nullptr;
    std::size_t slot = 0;
  };
  static LastReturned& last_returned() noexcept {
    thread_local LastReturned last;
    return last;
  }

  static Grant take_idle_locked(State& state, time_point now, std::size_t& closing) noexcept {
    const auto stale = [&](const Slot& slot) {
      return now - slot.returned >= state.idle_timeout || now - slot.created >= state.max_lifetime;
    };
    // The least recently returned sit at the bottom: shed the idle-expired ones there first.
    while (state.idle_count > 0 && stale(state.slots[state.idle[state.idle_bottom]])) {
      const std::size_t slot = state.idle[state.idle_bottom];
      state.idle_bottom = wrap(state, state.idle_bottom + 1);
      --state.idle_count;
      chain_closing_locked(state, slot, closing);
    }
    // Affinity: the connection this thread returned last, if it is still idle and fresh, comes
    // back to it first (its peer on the other side is likely still warm for this thread). It
    // leaves the stack from where it sits; the rest keep their order, oldest at the bottom.
    const LastReturned mine = last_returned();
    if (mine.state == &state) {
      for (std::size_t i = 0; i < state.idle_count; ++i) {
        if (state.idle[wrap(state, state.idle_bottom + i)] != mine.slot) continue;
        if (stale(state.slots[mine.slot])) break;
        for (std::size_t j = i; j + 1 < state.idle_count; ++j) {
          state.idle[wrap(state, state.idle_bottom + j)] =
              state.idle[wrap(state, state.idle_bottom + j + 1)];
        }
        --state.idle_count;
        ++state.reused;
        return Grant{.slot = mine.slot, .has_connection = true};
      }
    }
    while (state.idle_count > 0) {
      --state.idle_count;
      const std::size_t slot = state.idle[wrap(state, state.idle_bottom + state.idle_count)];
      if (!stale(state.slots[slot])) {
        ++state.reused;
        return Grant{.slot = slot, .has_connection = true};
      }
      chain_closing_locked(state, slot, closing);
    }
    return Grant{};
  }

  // A slot to open a connection in: one found stale just now, else a free one if any.
  static Grant reserve_locked(State& state, std::size_t& closing) noexcept {
    if (closing != no_slot) {
      const std::size_t slot = std::exchange(closing, state.slots[closing].next_closing);
      state.slots[slot].next_closing = no_slot;
      return Grant{.slot = slot, .has_connection = false};
    }
    if (state.open == state.config.max_connections) return Grant{};
    ++state.open;
    const std::size_t slot = state.free.back();
    state.free.pop_back();
    return Grant{.slot = slot, .has_connection = false};
  }

  // Queues the caller (`lock` held) until a connection or slot is handed to it, and returns that
  // with `lock` released; throws on timeout, cancellation, deadline or close.
  static Grant wait(State& state, std::unique_lock<std::mutex>& lock, const Context& ctx,
                    time_point now) {
    if (ctx.stop.stop_requested()) throw cancelled_error();
    if (ctx.deadline && now >= *ctx.deadline) throw deadline_exceeded_error();
    const time_point own_limit = now + state.acquire_timeout;
    const Grant grant = wait_locked(state, lock, ctx, own_limit);
    lock.unlock();
    if (grant.slot != no_slot) {
      if (state.config.on_event) {  // the clock is read for the event only
        detail::emit(state.config.on_event,
                     {.type = EventType::pool_waited, .delay = waited(now, state.clock.now())});
      }
      return grant;
    }
    const time_point end = state.clock.now();
    detail::throw_if_cancelled_or_past_deadline(ctx, own_limit, end);
    detail::emit(state.config.on_event,
                 {.type = EventType::pool_exhausted, .delay = waited(now, end)});
    throw pool_exhausted_error();
  }

  // Queues the caller until a connection or slot is handed to it (returned) or the wait ends
  // unserved (an empty Grant); throws when the pool closes. Out of the queue on every way out.
  static Grant wait_locked(State& state, std::unique_lock<std::mutex>& lock, const Context& ctx,
                           time_point own_limit) {
    Waiter self;
    self.prev = state.last_waiter;
    (state.last_waiter != nullptr ? state.last_waiter->next : state.first_waiter) = &self;
    state.last_waiter = &self;
    // Unlinks `self` on every way out (exceptions from the wait included) unless it was served.
    struct Unlink {
      State& state;
      Waiter& self;
      ~Unlink() {
        if (self.grant.slot == no_slot) unlink_locked(state, self);
      }
    } unlink{state, self};
    detail::wait_until(state.clock, state.served, lock, ctx.stop,
                       detail::wait_deadline(own_limit, ctx),
                       [&] { return self.grant.slot != no_slot || state.closed; });
    if (self.grant.slot != no_slot) return self.grant;
    if (state.closed) throw error(closed_message);
    return Grant{};
  }

  // An event's delay: the time from `from` to `to`.
  static std::chrono::nanoseconds waited(time_point from, time_point to) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from);
  }

  // Hands `grant` to the oldest waiter; false if nobody waits or the pool is closed.
  static bool serve_oldest_locked(State& state, Grant grant) noexcept {
    Waiter* oldest = state.first_waiter;
    if (oldest == nullptr || state.closed) return false;
    unlink_locked(state, *oldest);
    oldest->grant = grant;
    state.served.notify_all();  // under the mutex: the waiter cannot return and vanish before this
    return true;
  }

  // Opens a connection in the reserved `slot` without holding the mutex.
  static Lease open_connection(State& state, std::size_t slot_index) {
    Slot& slot = state.slots[slot_index];
    slot.connection.reset();  // a stale connection this call is replacing: close it first
    try {
      slot.connection.emplace(state.factory());
    } catch (...) {
      const std::scoped_lock lock{state.mutex};
      release_slot_locked(state, slot_index);
      throw;
    }
    slot.created = state.clock.now();
    const std::scoped_lock lock{state.mutex};
    ++state.created;
    return Lease{state, slot_index};
  }

  // Takes a connection back from a lease: reused if fresh and the pool is open, else closed.
  static void give_back(State& state, std::size_t slot_index, bool discard) noexcept {
    Slot& slot = state.slots[slot_index];
    const time_point now = state.clock.now();
    if (!discard && now - slot.created < state.max_lifetime) {
      const std::scoped_lock lock{state.mutex};
      if (!state.closed) {
        if (serve_oldest_locked(state, Grant{.slot = slot_index, .has_connection = true})) {
          ++state.reused;
        } else {
          slot.returned = now;
          state.idle[wrap(state, state.idle_bottom + state.idle_count)] = slot_index;
          ++state.idle_count;
          last_returned() = LastReturned{.state = &state, .slot = slot_index};
        }
        return;
      }
    }
    slot.connection.reset();  // closes it, outside the mutex
    const std::scoped_lock lock{state.mutex};
    ++state.discarded;
    release_slot_locked(state, slot_index);
  }

  // Closes the connections chained from `closing` outside the mutex, then frees their slots.
  static void close_chain(State& state, std::size_t closing) noexcept {
    if (closing == no_slot) return;
    for (std::size_t slot = closing; slot != no_slot; slot = state.slots[slot].next_closing) {
      state.slots[slot].connection.reset();
    }
    const std::scoped_lock lock{state.mutex};
    for (std::size_t slot = closing; slot != no_slot;) {
      const std::size_t next = std::exchange(state.slots[slot].next_closing, no_slot);
      release_slot_locked(state, slot);
      slot = next;
    }
  }

  // An emptied slot: a reservation for the oldest waiter, else free.
  static void release_slot_locked(State& state, std::size_t slot) noexcept {
    state.slots[slot].next_closing = no_slot;
    if (serve_oldest_locked(state, Grant{.slot = slot, .has_connection = false})) return;
    --state.open;
    state.free.push_back(slot);  // never reallocates: capacity is max_connections
  }

  static void chain_closing_locked(State& state, std::size_t slot, std::size_t& closing) noexcept {
    state.slots[slot].next_closing = std::exchange(closing, slot);
    ++state.discarded;
  }

  static void unlink_locked(State& state, Waiter& waiter) noexcept {
    (waiter.prev != nullptr ? waiter.prev->next : state.first_waiter) = waiter.next;
    (waiter.next != nullptr ? waiter.next->prev : state.last_waiter) = waiter.prev;
    waiter.prev = waiter.next = nullptr;
  }

  // `i` (below 2 * max_connections) as an index into the idle ring buffer.
  static std::size_t wrap(const State& state, std::size_t i) noexcept {
    return i < state.idle.size() ? i : i - state.idle.size();
  }

  std::unique_ptr<State> state_;
};

template <class Connection, class Clock>
auto ConnectionPool<Connection, Clock>::acquire(const Context& ctx) -> Lease {
  State& state = *state_;
  const time_point now = state.clock.now();
  std::size_t closing = no_slot;  // stale idle connections this call found: closed below
  Grant grant;
  {
    std::unique_lock lock{state.mutex};
    if (state.closed) throw error(closed_message);
    grant = take_idle_locked(state, now, closing);
    if (grant.slot == no_slot) grant = reserve_locked(state, closing);
    if (grant.slot == no_slot) grant = wait(state, lock, ctx, now);  // releases the lock
  }
  close_chain(state, closing);
  if (grant.has_connection) return Lease{state, grant.slot};
  return open_connection(state, grant.slot);
}

template <class Connection, class Clock>
void ConnectionPool<Connection, Clock>::close() {
  State& state = *state_;
  std::size_t closing = no_slot;
  {
    const std::scoped_lock lock{state.mutex};
    state.closed = true;
    while (state.idle_count > 0) {
      --state.idle_count;
      chain_closing_locked(state, state.idle[wrap(state, state.idle_bottom + state.idle_count)],
                           closing);
    }
    state.served.notify_all();  // waiters see `closed` and fail
  }
  close_chain(state, closing);
}

/// Deduces the connection type from the factory: `ConnectionPool pool{[] { return Socket{}; }}`.
template <class Factory>
// clang-format off
  requires std::invocable<Factory&>
ConnectionPool(Factory, ConnectionPoolConfig = {})
    -> ConnectionPool<std::invoke_result_t<Factory&>>;
// clang-format on

/// Same, with a clock: `ConnectionPool pool{make_socket, {}, ManualClock{}}`.
template <class Factory, class Clock>
// clang-format off
  requires std::invocable<Factory&>
ConnectionPool(Factory, ConnectionPoolConfig, Clock)
    -> ConnectionPool<std::invoke_result_t<Factory&>, Clock>;
// clang-format on

}  // namespace bulwark
