package com.google.cloud.pubsub.testing.v1;

import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.HashSet;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Stands in for the Pub/Sub emulator's (0.8.20) delayed-redelivery task, which ends for good on the
 * first NullPointerException: see README.md beside this file. Before each run it keeps every delayed
 * ack id once, at its earliest time, and only while its delivery is still outstanding; then it runs the
 * emulator's own expireOutstandingMessages, and no exception ends the periodic task.
 */
class MessageBacklog$ExpireOutstandingMessagesRunnable implements Runnable {
  private static final Logger LOG = Logger.getLogger("devtools.pubsub_emulator_fix");
  private final MessageBacklog backlog;
  private final Field delivered;
  private final Field delayed;
  private final Method expire;

  MessageBacklog$ExpireOutstandingMessagesRunnable(MessageBacklog backlog) {
    this.backlog = backlog;
    try {
      delivered = MessageBacklog.class.getDeclaredField("delivered");
      delayed = MessageBacklog.class.getDeclaredField("delayedMessagesByTime");
      expire = MessageBacklog.class.getDeclaredMethod("expireOutstandingMessages");
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException("unexpected emulator version for devtools/pubsub_emulator_fix", e);
    }
    delivered.setAccessible(true);
    delayed.setAccessible(true);
    expire.setAccessible(true);
  }

  @Override
  public void run() {
    try {
      synchronized (backlog) {
        report(prune());
        expire.invoke(backlog);
      }
    } catch (InvocationTargetException e) {
      LOG.log(Level.SEVERE, "pubsub_emulator_fix: expireOutstandingMessages failed", e.getCause());
    } catch (Throwable e) { // the periodic task must outlive any one failure
      LOG.log(Level.SEVERE, "pubsub_emulator_fix: redelivery task failed", e);
    }
  }

  private static void report(int[] dropped) {
    if (dropped[0] + dropped[1] > 0) {
      LOG.info("pubsub_emulator_fix: dropped " + dropped[0] + " duplicate and " + dropped[1] + " stale delayed"
          + " redelivery entries (deliveries that failed together; the stock emulator's nackMessage throws"
          + " NullPointerException on them and its redelivery task stops)");
    }
  }

  /** Drop duplicate and no-longer-outstanding ack ids from the delayed map; return both counts. */
  @SuppressWarnings("unchecked")
  private int[] prune() throws IllegalAccessException {
    Map<String, ?> outstanding = (Map<String, ?>) delivered.get(backlog);
    SortedMap<Long, Set<String>> byTime = (SortedMap<Long, Set<String>>) delayed.get(backlog);
    Set<String> seen = new HashSet<>();
    int[] dropped = {0, 0};
    for (Iterator<Map.Entry<Long, Set<String>>> times = byTime.entrySet().iterator(); times.hasNext(); ) {
      Set<String> ackIds = times.next().getValue();
      for (Iterator<String> ids = ackIds.iterator(); ids.hasNext(); ) {
        String ackId = ids.next();
        if (!outstanding.containsKey(ackId)) {
          dropped[1]++;
          ids.remove();
        } else if (!seen.add(ackId)) {
          dropped[0]++;
          ids.remove();
        }
      }
      if (ackIds.isEmpty()) {
        times.remove();
      }
    }
    return dropped;
  }
}
